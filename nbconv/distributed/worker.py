"""What a fleet-tuning worker runs (through the client): no Dask import here.

`probe()` describes the worker (fingerprint computed here, on the worker, with its own thread
settings; nbconv version; kernel source hashes) and points its tuning at an in-memory
database: the client alone writes the SQLite file. `tune(op, p)` tunes one shape and returns
that shape's rows with their fingerprint.
"""
from __future__ import annotations

import os
import platform
import socket
import time


def identity() -> dict:
    """nbconv's version and every registered kernel's source hash: what must match the client's."""
    import nbconv
    from nbconv import ops  # noqa: F401  (registers the kernels)
    from nbconv.tuner import registry
    return {"version": nbconv.__version__,
            "sources": {f"{op}/{impl.name}": impl.source_hash
                        for op in registry.ops() for impl in registry.impls(op)}}


def probe(in_memory: bool = True) -> dict:
    from nbconv import knobs, ops
    if in_memory and knobs.tuning_db_path() != ":memory:":
        knobs.set_tuning_db(":memory:")
        ops.reset()
    t = ops.tuner()
    info = t.fingerprint()
    return {**identity(), "fp": t.fp(), "fingerprint": info, "host": socket.gethostname(),
            "node": platform.node(), "pid": os.getpid()}


def _die_once() -> None:
    """Test hook (NBCONV_DASK_DIE_ONCE): the first task to create the marker file kills its process."""
    from nbconv import knobs
    marker = knobs.die_once_marker()
    if not marker:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(1)


def tune(op: str, p, retune: bool = False) -> dict:
    """Tune one Problem here; {"fp", "key", "seconds", "rows": {table: [row]}} of this shape."""
    from nbconv import ops
    _die_once()
    t = ops.tuner()
    start = time.perf_counter()
    t.select(op, p, ops.make_args(op, p), retune=retune)
    seconds = time.perf_counter() - start
    key, fp = p.key(), t.fp(p)
    rows = {"fingerprints": t.db.rows("fingerprints", fp)}
    for table in ("measurements", "decisions"):
        rows[table] = [r for r in t.db.rows(table, fp) if r["key"] == key and r["op"] == op]
    return {"fp": fp, "key": key, "seconds": seconds, "rows": rows}
