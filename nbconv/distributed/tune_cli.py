"""`nbconv tune --local-cluster N` / `--cluster ADDRESS`: fleet tuning from the command line."""
from __future__ import annotations

from . import require


def items_of(a) -> list:
    """[(op, Problem)] to tune: a model's layers (collected without measuring), a CSV, or the
    reference shapes."""
    from nbconv import commands, ops
    if a.model:
        if not a.input_shape:
            raise SystemExit("nbconv: --model needs --input-shape (batch first), e.g. 1,128,128,3")
        shape = commands.ints(a.input_shape, "--input-shape")
        if a.batch:
            shape = (a.batch,) + shape[1:]
        model = commands._load_model(a.model)
        with ops.tuning(mode="off"):        # the workers measure; the client only collects
            found = commands._problems_of_layers(model.layers, commands._random_input(shape, a.dtype))
        seen, items = set(), []
        for _, op, p in found:
            if (op, p) not in seen:
                seen.add((op, p))
                items.append((op, p))
        return items
    from nbconv.shapes import load_shapes
    return [("conv", p) for _, p in load_shapes(a.csv, batch=a.batch, layout=a.layout, dtype=a.dtype)]


def cmd_fleet_tune(a) -> int:
    distributed = require()
    from nbconv import knobs, ops

    from .cluster import connect, local_cluster
    from .fleet import fleet_tune
    items = items_of(a)
    if a.local_cluster is not None and a.local_cluster < 1:
        raise SystemExit("nbconv: --local-cluster needs a positive worker count. "
                         f"Received: {a.local_cluster}")
    print(f"tuning database: {ops.tuner().db.path}")
    if a.cluster:
        with connect(a.cluster, ca_file=a.tls_ca_file, cert=a.tls_cert, key=a.tls_key) as client:
            report = fleet_tune(client, items, retune=a.retune)
    else:
        envs = [knobs.worker_env(a.numba_threads) for _ in range(a.local_cluster)]
        with local_cluster(envs=envs) as cluster, distributed.Client(cluster) as client:
            report = fleet_tune(client, items, retune=a.retune)
    for line in report.lines():
        print(line)
    print("see every machine's decisions with `nbconv db list --all`")
    return 0 if all(k.done == k.shapes for k in report.kinds.values()) and report.kinds else 1


def add_arguments(t) -> None:
    """The fleet options of `nbconv tune` (parser `t`)."""
    g = t.add_argument_group("fleet tuning (needs the extra: pip install 'nbconv[distributed]')")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="ADDRESS", help="a Dask scheduler, e.g. tls://host:8786")
    where.add_argument("--local-cluster", type=int, metavar="N",
                       help="N local worker processes on 127.0.0.1, one thread each")
    g.add_argument("--numba-threads", type=int, default=1, help="NUMBA_NUM_THREADS of each local worker")
    g.add_argument("--tls-ca-file", help="CA certificate for a tls:// scheduler")
    g.add_argument("--tls-cert", help="client certificate for a tls:// scheduler")
    g.add_argument("--tls-key", help="client key for a tls:// scheduler")
