"""A generic auto-tuner: registry, measurement, selection, SQLite tuning database.

Imports only the standard library and numpy; it knows a problem only through `key()`
(and optional `flops()` / `bytes()`).
"""
from .registry import Impl, Registry, register, registry

__all__ = ["Impl", "Registry", "register", "registry"]
