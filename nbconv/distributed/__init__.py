"""nbconv beyond one machine, on Dask (the optional extra `pip install 'nbconv[distributed]'`).

Dask is imported only inside this package's functions, never when nbconv is imported.

- `fleet.fleet_tune(client, items)`: tune shapes on every worker, grouped by machine kind
  (fingerprint computed on the worker); the client merges the rows into its own database.
- `cluster.local_cluster(n)` / `cluster.connect(address, ...)`: clusters bound to loopback /
  reached over TLS.
- `predict_dask(model, x)`: a model over a `dask.array` chunked along the batch axis, lazily.
- `worker`: what runs on a worker (probe, tune one shape); imports no dask.
"""
from __future__ import annotations

import importlib
import sys

EXTRA = "pip install 'nbconv[distributed]'"


def require(module: str = "distributed"):
    """Import a Dask module, or exit saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SystemExit(f"nbconv: this needs Dask ({e}); install the extra: {EXTRA}") from None


def is_dask_collection(x) -> bool:
    """True for a Dask collection (a dask.array...), without importing dask when it is not loaded."""
    if "dask" not in sys.modules:
        return False
    import dask
    return bool(dask.is_dask_collection(x))


def predict_dask(model, x, batch_size=None):
    """See `nbconv.distributed.predict.predict_dask`."""
    from .predict import predict_dask as run
    return run(model, x, batch_size=batch_size)
