"""`nbconv estimate-check`: how good is mode `estimate` on shapes it has not seen?

Fits the cost model (`tuner.costmodel`, features `nbconv.features`) on the measured training
shapes (the reference set at the given batches, plus a seeded sample of the DeepBench and
benchdnn lists, plus the rows of this machine in any `--model-db`), then, on a disjoint seeded
sample of the lists, measures every applicable candidate and reports the fraction of test shapes
where the model's choice runs within 10 % and within 25 % of the measured winner, next to the old
fallback (the highest-priority candidate) and to the noise floor: with `--noise N`, the first N
test shapes are measured a second time, and the second run's winner is scored against the first
run exactly as the model's choice is (a model cannot score better than the measurement agrees
with itself). A candidate's time is its fastest sample (`costmodel.seconds`: on a shared machine
a preempted sample is many times the others). Measurements go to the tuning DB (`--db`): a rerun
reuses them (the noise re-measure replaces the stored rows of its shapes).
`--clock cpu --threads 1` times the process's CPU seconds on one thread (`tuner.registry.
process_timer`), which other processes on a busy machine do not inflate. Timing is short
(`SHORT`, stated in the output), since it measures every candidate of every shape; `--tiny` is
the test mode (tiny lists, no reference shapes, one sample each).
"""
from __future__ import annotations

import math
import sys
import time
from collections import Counter
from pathlib import Path

from .commands import fmt, table

SHORT = {"min_sample_s": 0.002, "min_samples": 5, "max_samples": 7, "candidate_budget_s": 0.2,
         "verify_max_flops": 5e7, "shape_budget_s": 600.0, "prune": 0.0}
TINY = {"min_sample_s": 0.0, "min_samples": 1, "max_samples": 1, "candidate_budget_s": 0.0,
        "verify_max_flops": 5e7, "shape_budget_s": 600.0, "prune": 0.0}


def samples(a):
    """(train, test): [(name, stratum, Problem)], disjoint (test excludes every training key)."""
    from .shape_lists import BENCHDNN, DEEPBENCH, load_list, sample
    from .shapes import load_shapes
    if not a.lists:
        raise SystemExit("nbconv: estimate-check needs --lists DIR, the folder holding "
                         f"{DEEPBENCH} and {BENCHDNN}")
    shapes = []
    for name in (DEEPBENCH, BENCHDNN):
        path = Path(a.lists) / name
        if not path.exists():
            raise SystemExit(f"nbconv: --lists: {path} does not exist")
        shapes += load_list(path, layout=a.layout)
    ref = [] if a.tiny else [(f"reference:{n}:b{b}", "reference", p) for b in a.batches
                             for n, p in load_shapes(batch=b, layout=a.layout)]
    cap = a.max_gflop * 1e9
    train = ref + sample(shapes, a.train, seed=a.seed, max_flops=cap, exclude=[p.key() for *_, p in ref])
    test = sample(shapes, a.test, seed=a.seed + 1, max_flops=cap, exclude=[p.key() for *_, p in train])
    return train, test


def complete(t, p) -> bool:
    """Every candidate of p has a valid stored row (nothing to measure)."""
    from nbconv.tuner import config_json
    stored = t.stored("conv", p)
    return all((r := stored.get((i.name, config_json(c)))) is not None and r["source_hash"] == i.source_hash
               and r["status"] not in ("skipped", "pruned") for i, c in t.candidates("conv", p))


def measured(t, problems, desc, *, again=False):
    """{key: {(impl, config json): seconds}} of every candidate (measured if not stored; every
    one measured anew with `again`): the fastest sample, as the cost model reads rows
    (`costmodel.seconds`)."""
    from nbconv.tuner.costmodel import seconds

    from .commands import progress
    out = {}
    for _, _, p in progress(problems, desc):
        rows = t.ensure_measured("conv", p, t.candidates("conv", p), retune=again)
        out[p.key()] = {k: sec for k, r in rows.items() if r["status"] == "ok" and (sec := seconds(r))}
    return out


def evaluate(t, model, test, times):
    """Per test shape: (name, key, chosen label, winner label, ratio chosen/winner, priority ratio)."""
    from nbconv.tuner import config_json, label
    out = []
    for name, _, p in test:
        cands = t.candidates("conv", p)
        med = times[p.key()]
        if not med:
            continue
        best = min(med, key=med.get)
        pred = model.predict_all(p.key(), [(i.name, c) for i, c in cands], t.features)
        first = (cands[0][0].name, config_json(cands[0][1]))
        chosen = min(pred, key=pred.get) if pred else first
        out.append((name, p.key(), label(chosen[0], _cfg(chosen[1])), label(best[0], _cfg(best[1])),
                    med.get(chosen, math.inf) / med[best], med.get(first, math.inf) / med[best]))
    return out


def noise_floor(first, second):
    """Per shape measured twice: the first run's time of the second run's winner over the first
    run's winner (what a perfect model would score against a measurement this noisy)."""
    out = []
    for key, b in second.items():
        a = first.get(key)
        if a and b:
            out.append(a.get(min(b, key=b.get), math.inf) / min(a.values()))
    return out


def _cfg(text):
    import json
    return json.loads(text)


def training_rows(t, keys, extra, test_keys):
    """The stored rows of this machine that train the model: those of `keys` in the tuner's DB,
    and every conv row of the DBs at paths `extra` except those of test shapes; rows of an impl
    whose source changed since are left out."""
    from nbconv.tuner import TuningDB
    hashes = {i.name: i.source_hash for i in t.registry.impls("conv")}
    dbs = [(t.db, keys)] + [(TuningDB(path), None) for path in extra]
    return [r for db, only in dbs for r in db.rows("measurements", t.fp())
            if r["op"] == "conv" and (r["key"] in only if only is not None else r["key"] not in test_keys)
            and hashes.get(r["impl"]) == r["source_hash"]]


def score(what, ratios) -> str:
    n = len(ratios)
    geo = math.exp(sum(math.log(min(r, 1e6)) for r in ratios) / n)
    return (f"{what}: within 10 % of the measured winner on {sum(r <= 1.10 for r in ratios)}/{n} = "
            f"{100 * sum(r <= 1.10 for r in ratios) / n:.1f} %, within 25 % on "
            f"{sum(r <= 1.25 for r in ratios)}/{n} = {100 * sum(r <= 1.25 for r in ratios) / n:.1f} %; "
            f"geomean ratio {geo:.3f}, worst {max(ratios):.2f}")


def timing_of(a) -> dict:
    """The tuner settings the check measures with (`--tiny`, `--samples`, `--min-time`, `--clock`)."""
    from nbconv.tuner.registry import process_timer
    timing = dict(TINY if a.tiny else SHORT)
    if a.samples and not a.tiny:
        timing.update(min_samples=a.samples, max_samples=a.samples, candidate_budget_s=math.inf)
    if a.min_time is not None and not a.tiny:
        timing["min_sample_s"] = a.min_time
    return {**timing, "clock": process_timer if a.clock == "cpu" else None}


def cmd_estimate_check(a) -> int:
    from nbconv.tuner import CostModel

    from . import ops, threads
    if a.clock == "cpu" and a.threads != 1:
        raise SystemExit("nbconv: estimate-check --clock cpu counts every thread's CPU time: use it "
                         f"with --threads 1. Received: --threads {a.threads}")
    if a.threads is not None:
        threads.set_threads(a.threads)
        ops.reset()                    # the fingerprint holds the thread counts
    t = ops.tuner()
    train, test = samples(a)
    drawn = len(train), len(test)
    if a.stored_only:            # the seeded samples, less the shapes not (yet) fully measured
        train, test = ([x for x in xs if complete(t, x[2])] for xs in (train, test))
    timing = timing_of(a)
    start = time.perf_counter()
    with t.using(**timing):
        times = measured(t, train + test, "measuring")
        spent = time.perf_counter() - start
        again = measured(t, test[:a.noise], "measuring again", again=True) if a.noise else {}
    spent_again = time.perf_counter() - start - spent
    test_keys = {p.key() for *_, p in test}
    rows = training_rows(t, {p.key() for *_, p in train}, a.model_db or [], test_keys)
    model = CostModel.fit(rows, t.features)
    res = evaluate(t, model, test, times)
    n = len(res)
    print(f"tuning database: {t.db.path} (fingerprint {t.fp()}); measuring took {spent:.0f} s "
          f"(stored rows reused){f', the noise re-measure {spent_again:.0f} s' if a.noise else ''}")
    shown = {k: v for k, v in timing.items() if k != "clock"}
    print(f"timing: {', '.join(f'{k}={v:g}' for k, v in shown.items())}, clock {a.clock}, threads "
          f"{threads.counts()} (short: every candidate of every shape is measured)")
    print(f"sample: seed {a.seed}, layout {a.layout}, FLOP cap {a.max_gflop:g} GFLOP, lists in {a.lists}")
    if a.stored_only:
        print(f"  --stored-only: {len(train)} of {drawn[0]} training and {len(test)} of {drawn[1]} test "
              "shapes drawn were fully measured and are used")
    n_ref = sum(s == "reference" for _, s, _ in train)
    print(f"  train: {len(train)} shapes ({n_ref} reference at batch "
          f"{','.join(map(str, a.batches))}, {dict(Counter(s.split(':')[0] for _, s, _ in train))})"
          f"{f' + the rows of {len(a.model_db)} --model-db' if a.model_db else ''}, "
          f"{len(rows)} measured rows of {len({r['key'] for r in rows})} shapes, models for "
          f"{len(model.impls)} impls")
    print(f"  test:  {len(test)} shapes, disjoint ({dict(Counter(s.split(':')[0] for _, s, _ in test))}); "
          f"strata: {len({s for _, s, _ in test})}")
    if a.show_sample:
        table(["test shape", "key", "estimated choice", "measured winner", "ratio", "priority ratio"],
              [[name, key, c, w, fmt(r, ".3f"), fmt(pr, ".3f")] for name, key, c, w, r, pr in res])
    if not n:
        print("no test shape was measured")
        return 1
    for what, col in (("cost model", 4), ("priority (old fallback)", 5)):
        print(score(what, [r[col] for r in res]))
    floor = noise_floor(times, again)
    if floor:
        print(score(f"noise floor (the winner of a re-measure of {len(floor)} test shapes)", floor))
    sys.stdout.flush()
    return 0


def add_arguments(sub) -> None:
    c = sub.add_parser("estimate-check", help="fit the cost model on measured shapes and score its "
                       "choices on unseen ones (measures every candidate: slow)")
    c.add_argument("--lists", help="folder with deepbench_conv.csv and benchdnn_conv.csv")
    c.add_argument("--train", type=int, default=60, help="list shapes added to the training set (seeded)")
    c.add_argument("--test", type=int, default=100, help="list shapes to test on (seeded, disjoint)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--max-gflop", type=float, default=1.0, help="leave out shapes above this (GFLOP)")
    c.add_argument("--batches", type=lambda s: [int(v) for v in s.split(",") if v], default=[1, 8],
                   help="batch sizes of the reference shapes in the training set ('' for none)")
    c.add_argument("--layout", default="channels_last", choices=["channels_last", "channels_first"])
    c.add_argument("--show-sample", action="store_true", help="print every test shape and its ratio")
    c.add_argument("--tiny", action="store_true", help="test mode: no reference shapes, one sample each")
    c.add_argument("--stored-only", action="store_true", help="use only the drawn shapes whose every "
                   "candidate is already measured (says how many); measure nothing")
    c.add_argument("--noise", type=int, default=0, metavar="N", help="measure the first N test shapes "
                   "again and print how often the re-measure's winner is within 10 %% / 25 %% (noise floor)")
    c.add_argument("--model-db", action="append", metavar="PATH", help="another tuning DB whose rows "
                   "(this machine's, test shapes left out) also train the model; repeatable")
    c.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="cpu: CPU time of the process (needs --threads 1); robust on a busy machine")
    c.add_argument("--threads", type=int, help="Numba and BLAS threads (default: as configured)")
    c.add_argument("--samples", type=int, help="exactly this many samples per candidate (default: 5-7 "
                   "within 0.2 s)")
    c.add_argument("--min-time", type=float, help="seconds per sample, at least (default 0.002)")
