"""Issue 14's closing-note figures, on a local Dask cluster (not an asv benchmark: a script).

    python -m benchmarks.dask_check fleet     # 2 kinds x 2 workers tune 6 small shapes, with and
                                              # without a worker killed mid-sweep
    python -m benchmarks.dask_check predict   # a small CNN over 256 32x32 images: in memory, over
                                              # a dask.array (threads here; 2 worker processes)

Every fleet run re-tunes (`retune=True`) so the runs do the same work; the first one also pays
the workers' Numba cache loads. Predict timings are interleaved, after warm-up calls (tuning and
compiling happen there), median of 5. nbconv is imported inside the functions: Dask's spawned
workers re-import this module, and numba must not be imported there before the worker's
NUMBA_NUM_THREADS is set.
"""
import os
import statistics
import sys
import tempfile
import time

import numpy as np

QUICK = {"min_sample_s": 0.0005, "min_samples": 3, "max_samples": 5, "candidate_budget_s": 0.05}
SHAPES = [(1, 16, 8, 8, 3), (1, 16, 8, 16, 1), (1, 12, 16, 16, 3), (1, 8, 4, 8, 5), (2, 16, 8, 8, 3),
          (1, 24, 3, 8, 3)]         # (N, H=W, C, filters, kernel), padding same


def fleet() -> None:
    import distributed
    from nbconv.tuner import TuningDB

    from nbconv import knobs, make_problem
    from nbconv.distributed.cluster import local_cluster
    from nbconv.distributed.fleet import fleet_tune
    marker = tempfile.mktemp()
    envs = [knobs.worker_env(1, fingerprint_extra=k, die_once=marker, **QUICK) for k in "aabb"]
    items = [("conv", make_problem("conv", (n, h, h, c), rank=2, kernel=(k, k), padding="same",
                                   out_channels=o)) for n, h, c, o, k in SHAPES]
    runs = [("no kill (first: workers load the Numba cache)", False), ("no kill", False),
            ("one worker killed", True), ("no kill", False), ("one worker killed", True)]
    with local_cluster(envs=envs) as cluster, distributed.Client(cluster) as client:
        for label, kill in runs:
            client.wait_for_workers(len(envs), timeout=120)
            if kill and os.path.exists(marker):
                os.remove(marker)           # the next task on a worker with the hook kills it
            elif not kill:
                open(marker, "a").close()
            start = time.perf_counter()
            report = fleet_tune(client, items, db=TuningDB(":memory:"), progress=False, retune=True)
            print(f"== {label}: {time.perf_counter() - start:.1f} s wall")
            print("\n".join(report.lines()), flush=True)


def predict() -> None:
    import dask.array as da
    import distributed
    import numba

    from nbconv import knobs, ops
    from nbconv.distributed.cluster import local_cluster
    from nbconv.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D
    from nbconv.models import Sequential
    model = Sequential([Input((32, 32, 3)), Conv2D(16, 3, padding="same", activation="relu"),
                        MaxPooling2D(), Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(),
                        Flatten(), Dense(10)])
    x = np.random.default_rng(0).uniform(-1, 1, (256, 32, 32, 3)).astype("float32")
    dx = da.from_array(x, chunks=(32, 32, 32, 3))
    names = ("in-memory predict", "dask.array, threads (in-process)",
             "dask.array, 2 workers x 1 numba thread")
    seconds: dict = {n: [] for n in names}
    with ops.tuning(**QUICK), local_cluster(envs=[knobs.worker_env(1, **QUICK)] * 2) as cluster, \
            distributed.Client(cluster) as client:
        runs = (lambda: model.predict(x, batch_size=32),
                lambda: model.predict(dx, batch_size=32).compute(scheduler="threads"),
                lambda: client.compute(model.predict(dx, batch_size=32)).result())
        for run in runs:            # warm-up: tuning and compiling, here and on the workers
            run()
            run()
        for _ in range(5):
            for name, run in zip(names, runs, strict=True):
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)
    base = statistics.median(seconds[names[0]])
    print(f"predict 256 x 32x32x3, batch 32, 8 chunks; numba threads here {numba.get_num_threads()}, "
          f"{os.cpu_count()} cores; median of 5, interleaved")
    for name in names:
        m = statistics.median(seconds[name])
        print(f"  {name:40s} {m * 1e3:8.1f} ms {256 / m:8.0f} img/s   x{base / m:.2f} of in-memory")


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("fleet", "predict"):
        raise SystemExit("usage: python -m benchmarks.dask_check fleet|predict")
    fleet() if sys.argv[1] == "fleet" else predict()
