"""Clusters for fleet tuning: a local one bound to loopback, or a remote one (TLS when given).

The scheduler runs pickled code: nothing here listens on a public interface by default. The
local cluster is a `SpecCluster` of `Nanny` worker processes (never threads: Numba's workqueue
layer aborts when several Python threads call it at once), one thread each, each with its own
environment (`knobs.worker_env`: NUMBA_NUM_THREADS set before numba is imported, an in-memory
tuning DB), and the `benchmark=1` resource that fleet tuning's tasks need (a worker started
elsewhere declares it with `dask worker --resources benchmark=1`).
"""
from __future__ import annotations

from . import require


def worker_spec(env: dict, *, threads: int = 1, benchmark: bool = True, security=None) -> dict:
    """A Nanny worker process on loopback; `benchmark`: it declares the resource fleet tuning
    needs; `security`: a `distributed.Security` (then it speaks tls://)."""
    distributed = require()
    from .fleet import RESOURCE
    tls = {"security": security, "protocol": "tls://"} if security is not None else {}
    return {"cls": distributed.Nanny,
            "options": {"nthreads": threads, "env": dict(env), "host": "127.0.0.1",
                        "dashboard": False, "silence_logs": 40,
                        "resources": {RESOURCE: 1} if benchmark else {}, **tls}}


def local_cluster(n: int = 0, *, envs: list[dict] | None = None, numba_threads: int = 1,
                  dashboard: bool = False, plain: int = 0, security=None):
    """A SpecCluster on 127.0.0.1: `n` workers with `knobs.worker_env(numba_threads)`, or one
    worker per environment in `envs`, all declaring the `benchmark` resource; and `plain` more
    workers without it (never given a tuning task). The dashboard is off unless asked (then on
    loopback). `security` (a `distributed.Security`): every connection is tls://. Workers are
    spawned and re-import the calling script: a script should import nbconv under
    `if __name__ == "__main__":` (or inside functions), else numba is imported there before the
    worker's NUMBA_NUM_THREADS is set (the kind's "numba threads" then shows the default)."""
    distributed = require()
    from distributed.deploy.spec import SpecCluster

    from nbconv import knobs
    envs = list(envs) if envs is not None else [knobs.worker_env(numba_threads) for _ in range(n)]
    if not envs:
        raise ValueError(f"local_cluster: needs at least one worker. Received: n={n}")
    scheduler = {"cls": distributed.Scheduler,
                 # the scheduler's HTTP server (health, metrics; the dashboard only when asked) is
                 # always started: on loopback and a free port, never the default :8787
                 "options": {"host": "127.0.0.1", "port": 0, "dashboard_address": "127.0.0.1:0",
                             "dashboard": dashboard}}
    if security is not None:
        scheduler["options"].update(security=security, protocol="tls://")
    workers = {f"w{i}": worker_spec(env, security=security) for i, env in enumerate(envs)}
    for i in range(plain):
        workers[f"plain{i}"] = worker_spec(knobs.worker_env(numba_threads), benchmark=False,
                                           security=security)
    return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40, security=security)


def security(ca_file: str | None = None, cert: str | None = None, key: str | None = None):
    """A `distributed.Security` requiring TLS when any file is given, else None."""
    if not (ca_file or cert or key):
        return None
    distributed = require()
    return distributed.Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key,
                                require_encryption=True)


def connect(address: str, *, ca_file: str | None = None, cert: str | None = None,
            key: str | None = None, timeout: float = 30):
    """A Client of the scheduler at `address` (e.g. tls://host:8786 with the TLS files)."""
    distributed = require()
    sec = security(ca_file, cert, key)
    if address.startswith("tls://") and sec is None:
        raise SystemExit("nbconv: a tls:// scheduler needs --tls-ca-file, --tls-cert and --tls-key")
    return distributed.Client(address, security=sec, timeout=timeout)


def compatible(mine: dict, infos: dict) -> tuple[dict, dict]:
    """Split {worker: probe info} into (usable, refused {worker: why}): a worker whose nbconv
    version or kernel source hashes differ from the client's (`worker.identity()`) is refused."""
    usable, refused = {}, {}
    for addr, info in infos.items():
        if isinstance(info, BaseException) or not isinstance(info, dict):
            refused[addr] = f"probe failed: {info!r}"
        elif info.get("version") != mine["version"]:
            refused[addr] = f"nbconv {info.get('version')} (client: {mine['version']})"
        elif info.get("sources") != mine["sources"]:
            theirs = info.get("sources") or {}
            differ = sorted(k for k in set(theirs) | set(mine["sources"])
                            if theirs.get(k) != mine["sources"].get(k))
            more = " ..." if len(differ) > 5 else ""
            refused[addr] = f"kernel sources differ: {', '.join(differ[:5])}{more}"
        else:
            usable[addr] = info
    return usable, refused


def kinds(usable: dict) -> dict[str, list[str]]:
    """{fingerprint hash: [worker address]}: the machine kinds among the usable workers."""
    out: dict[str, list[str]] = {}
    for addr, info in sorted(usable.items()):
        out.setdefault(info["fp"], []).append(addr)
    return out
