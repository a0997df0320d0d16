"""Fleet tuning: every machine kind tunes every shape; the client alone writes the database.

1. The client compiles one problem per kernel (and config) first, so the workers load Numba's
   cache instead of compiling the same functions at once (numba #4807).
2. Every worker that declares the `benchmark` resource (`dask worker --resources benchmark=1`) is
   probed (`worker.probe`, run on it): its fingerprint, nbconv version and kernel source hashes.
   Workers that differ from the client, or lack the resource, are reported and left out (a
   worker without it is never probed: its tuning database stays as it was); the others are
   grouped into kinds by fingerprint.
3. Each kind has a queue of all the shapes; an idle worker of the kind takes the next one
   (one task per shape, pinned to that worker, needing `benchmark=1`: Dask runs at most one
   per worker process whatever its thread count). Dask's resources are per process, not per
   host, so the client also starts a task on a host only when none is running there (several
   benchmarking workers on one host: the local cluster).
4. A worker that disappears (its process died) loses only its running shape: it goes back to
   its kind's queue and is retried on another worker of that kind (a restarted worker is
   probed and joins). A kind with no worker left is reported with its shapes undone. Which
   workers are alive is asked of the scheduler each time (`identity`): the client's cached
   `scheduler_info()` is refreshed in the background without its worker list, and reading it
   then made every worker look gone.
5. Every result (the shape's measurement, decision and fingerprint rows) is merged into the
   client's database with `nbconv.tuner.merge_rows`.
"""
from __future__ import annotations

import asyncio
import collections
import sys
import time
from dataclasses import dataclass, field

from . import require, worker


@dataclass
class KindReport:
    fp: str
    workers: list = field(default_factory=list)
    shapes: int = 0
    done: int = 0
    retried: int = 0
    failed: dict = field(default_factory=dict)     # shape index -> error text (not retried)
    seconds: float = 0.0
    fingerprint: dict = field(default_factory=dict)


@dataclass
class FleetReport:
    kinds: dict
    refused: dict
    seconds: float
    written: dict
    warmed: tuple = (0, 0.0)        # (kernel calls, seconds) of the client's cache warm-up

    def lines(self) -> list[str]:
        out = [f"warm-up in the client: {self.warmed[0]} (kernel, config) calls, {self.warmed[1]:.1f} s"]
        for addr, why in sorted(self.refused.items()):
            out.append(f"left out {addr}: {why}")
        for k in self.kinds.values():
            extra = k.fingerprint.get("extra")
            what = f"{k.fingerprint.get('cpu', '?')}, numba threads {k.fingerprint.get('numba_threads')}" + \
                (f", {extra}" if extra else "")
            failed = f", {len(k.failed)} failed" if k.failed else ""
            out.append(f"kind {k.fp} ({what}): {len(k.workers)} workers, {k.done}/{k.shapes} shapes, "
                       f"{k.seconds:.1f} s, {k.retried} retried{failed}")
            out += [f"  failed shape {i}: {why}" for i, why in sorted(k.failed.items())]
        out.append(f"fleet: {len(self.kinds)} kinds, sweep {self.seconds:.1f} s; merged "
                   + ", ".join(f"{n} {t}" for t, n in self.written.items()))
        return out


def warm_cache(items) -> int:
    """Compile (or load from Numba's cache) every candidate (impl, config) of `items` once, each
    on the smallest problem it applies to. Returns the number of calls made."""
    from nbconv import ops
    from nbconv.tuner import config_json, registry
    smallest: dict = {}
    for op, p in sorted(items, key=lambda it: it[1].flops()):
        for impl, cfg in registry.candidates(op, p):
            smallest.setdefault((op, impl.name, config_json(cfg)), (impl, cfg, p))
    for (op, _, _), (impl, cfg, p) in smallest.items():
        impl.bind(ops.make_args(op, p), p, cfg)()
    return len(smallest)


def _bars(kinds: dict, enabled: bool) -> dict:
    if not enabled:
        return {}
    try:
        from tqdm import tqdm
    except ImportError:
        return {}
    return {fp: tqdm(total=k.shapes, desc=f"kind {fp[:8]}", unit="shape", position=i, file=sys.stderr)
            for i, (fp, k) in enumerate(kinds.items())}


def _host(addr: str) -> str:
    return addr.rsplit(":", 1)[0]


RESOURCE = "benchmark"      # each tune task needs 1; a benchmarking worker declares 1


def alive_workers(client) -> dict:
    """{address: worker info} as the scheduler sees it now. Not `client.scheduler_info()`: its
    cache is overwritten every 2 s by a background refresh that asks for no workers."""
    return client.sync(client.scheduler.identity, n_workers=-1)["workers"]


def _probe(client, mine: dict, workers: dict, refused: dict) -> dict:
    """Probe the benchmarking workers among {address: info}; record the others in `refused`.
    Returns {address: probe info} of the usable ones."""
    from .cluster import compatible
    bench = sorted(a for a, w in workers.items() if (w.get("resources") or {}).get(RESOURCE, 0) >= 1)
    for addr in sorted(set(workers) - set(bench)):
        refused[addr] = f"no '{RESOURCE}' resource (start it with --resources {RESOURCE}=1)"
    if not bench:
        return {}
    ok, bad = compatible(mine, client.run(worker.probe, workers=bench, on_error="return"))
    refused.update(bad)
    return ok


def fleet_tune(client, items, *, retune: bool = False, db=None, progress: bool = True,
               warm: bool = True, poll_s: float = 0.1, rejoin_s: float = 30.0) -> FleetReport:
    """Tune [(op, Problem)] on every kind of worker of `client`; merge the rows into `db` (default:
    this process's tuning database). Returns the FleetReport."""
    distributed = require()
    from nbconv import ops
    from nbconv.tuner import merge_rows, registry

    from .cluster import kinds
    items = list(items)
    start = time.perf_counter()
    warmed = (warm_cache(items) if warm else 0, time.perf_counter() - start)
    mine = worker.identity()
    refused: dict = {}
    usable = _probe(client, mine, alive_workers(client), refused)
    reports = {fp: KindReport(fp, list(addrs), len(items), fingerprint=usable[addrs[0]]["fingerprint"])
               for fp, addrs in kinds(usable).items()}
    kind_of = {addr: info["fp"] for addr, info in usable.items()}
    queues = {fp: collections.deque(range(len(items))) for fp in reports}
    start = time.perf_counter()         # the kinds' seconds count from the sweep's start
    running: dict = {}          # future -> (fp, item index, worker address)
    bars = _bars(reports, progress)
    target = db if db is not None else ops.tuner().db
    settings = ops.tuner().settings
    written = {"fingerprints": 0, "measurements": 0, "decisions": 0}
    try:
        orphaned_since = None       # a kind with shapes left and no worker waits rejoin_s for one
        while True:
            orphaned = any(queues[fp] and not reports[fp].workers for fp in queues)
            orphaned_since = (orphaned_since or time.monotonic()) if orphaned else None
            waiting = orphaned and time.monotonic() - orphaned_since < rejoin_s
            if not (running or waiting or any(queues[fp] and reports[fp].workers for fp in queues)):
                break
            busy_workers = {addr for _, _, addr in running.values()}
            busy_hosts = {_host(addr) for addr in busy_workers}
            for fp, queue in queues.items():
                for addr in reports[fp].workers:
                    if not queue or addr in busy_workers or _host(addr) in busy_hosts:
                        continue
                    i = queue.popleft()
                    op, p = items[i]
                    fut = client.submit(worker.tune, op, p, retune, workers=[addr], allow_other_workers=False,
                                        resources={RESOURCE: 1}, pure=False,
                                        key=f"nbconv-tune-{fp}-{i}-{time.monotonic_ns()}")
                    running[fut] = (fp, i, addr)
                    busy_workers.add(addr)
                    busy_hosts.add(_host(addr))
            if not running:
                time.sleep(poll_s)
                _follow_workers(client, running, queues, reports, kind_of, mine, refused)
                continue
            try:
                done, _ = distributed.wait(list(running), timeout=poll_s, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for fut in done:
                fp, i, addr = running.pop(fut)
                out, exc = _outcome(fut, distributed.KilledWorker)
                if out is None:
                    if exc is not None:
                        reports[fp].failed[i] = exc
                    else:
                        queues[fp].append(i)
                        reports[fp].retried += 1
                    continue
                for t, n in merge_rows(target, out["rows"], registry=registry, settings=settings).items():
                    written[t] += n
                reports[fp].done += 1
                reports[fp].seconds = time.perf_counter() - start
                if fp in bars:
                    bars[fp].update(1)
            _follow_workers(client, running, queues, reports, kind_of, mine, refused)
    finally:
        for bar in bars.values():
            bar.close()
    ops.tuner().forget()
    # a worker whose probe failed and that has left since died (a restart under way): not refused
    alive = alive_workers(client)
    refused = {a: why for a, why in refused.items() if a in alive or not why.startswith("probe failed")}
    return FleetReport(reports, refused, time.perf_counter() - start, written, warmed)


def _outcome(fut, killed) -> tuple:
    """(result, None) of a finished task; (None, error text) of a task that failed on its own;
    (None, None) of a task to retry: its worker died (KilledWorker, cancelled) or its result was
    lost with it before the client fetched it (waiting for it would wait for that worker)."""
    if fut.status == "error":
        exc = fut.exception()
        return (None, None) if isinstance(exc, killed) else (None, f"{type(exc).__name__}: {exc}")
    if fut.status != "finished":
        return None, None
    try:
        return fut.result(timeout=60), None
    except (Exception, asyncio.CancelledError) as exc:
        lost = isinstance(exc, (killed, TimeoutError, OSError, asyncio.CancelledError))
        return (None, None) if lost else (None, f"{type(exc).__name__}: {exc}")


def _follow_workers(client, running, queues, reports, kind_of, mine, refused) -> None:
    """Requeue the shapes of workers that left; probe workers that joined (a restarted one)."""
    workers = alive_workers(client)
    alive = set(workers)
    for fut, (fp, i, addr) in list(running.items()):
        if addr not in alive:
            running.pop(fut)
            client.cancel(fut)
            queues[fp].append(i)
            reports[fp].retried += 1
    for addr in set(kind_of) - alive:       # gone: probed again should the address come back
        del kind_of[addr]
    new = {a: w for a, w in workers.items() if a not in kind_of and a not in refused}
    for addr, info in (_probe(client, mine, new, refused) if new else {}).items():
        kind_of[addr] = info["fp"]
    for k in reports.values():
        k.workers = sorted(a for a, fp in kind_of.items() if fp == k.fp)
