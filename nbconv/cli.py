"""`nbconv` command line: tune, explain, db export|import|list|clear|path (nbconv.commands);
`bench`, `report` and `overhead` measure, so they delegate (lazily, through importlib) to
nbconv.reports.compare, nbconv.reports.cli and nbconv.reports.overhead.

    nbconv tune [--csv FILE] [--batch N] [--layout L] [--dtype D] [--retune]
    nbconv tune --model package.module:attr --input-shape 1,128,128,3
    nbconv tune --model my.keras --batch 1,8   # every layer shape of a saved model, ahead of time
    nbconv tune --local-cluster 4 | --cluster tls://host:8786 --tls-ca-file ... (nbconv[distributed])
    nbconv explain 'conv/r2/float32/NHWC/n1/c64-64/g1/s56x56/k3x3/st1x1/d1x1/p1:1x1:1'
    nbconv explain "Conv2D(64, 3, padding='same')" --input-shape 1,56,56,64
    nbconv db list|export FILE|import FILE|merge OTHER.sqlite|clear|path
    nbconv tune --prune 3    # candidates the cost model puts 3x behind the best are not measured
    nbconv estimate-check --lists ../shared/shapes --train 60 --test 100   (nbconv.estimate_check)
    nbconv overhead          # a decided layer call vs the chosen kernel called directly
    nbconv bench --model my.keras --batch 1,8    # whole model: nbconv vs Keras vs PyTorch, images/s
    nbconv bench --networks all                  # the nine keras.applications networks
"""
from __future__ import annotations

import argparse
import importlib
import sys

USAGE_ERROR = 2
# commands that measure live in the reports package and parse their own arguments
DELEGATED = {"bench": "nbconv.reports.compare", "report": "nbconv.reports.cli",
             "overhead": "nbconv.reports.overhead"}
MODEL_BENCH = "nbconv.reports.model_bench"   # `bench --model PATH` / `bench --networks all`


def _bench_module(argv) -> str:
    whole = any(a.split("=")[0] in ("--model", "--networks") for a in argv)
    return MODEL_BENCH if whole else DELEGATED["bench"]


def _delegate(module: str, argv, what: str) -> int:
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        print(f"nbconv {what}: {module} is not available ({e}); it is part of nbconv's "
              f"{'benchmark' if what == 'bench' else 'reporting'} tools", file=sys.stderr)
        return USAGE_ERROR
    if not hasattr(mod, "main"):
        print(f"nbconv {what}: {module} has no main(argv)", file=sys.stderr)
        return USAGE_ERROR
    return int(mod.main(list(argv)) or 0)


def _batches(text):
    """One batch size (an int), or several (a tuple) for `tune --model`."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes are comma-separated integers: {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1: {text!r}")
    return sizes[0] if len(sizes) == 1 else sizes


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="nbconv", description="Tune and inspect nbconv's kernels.")
    ap.add_argument("--db", help="tuning database path (default: NBCONV_TUNING_DB or the user cache)")
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tune", help="tune a CSV of shapes (default: the reference set) or a model")
    t.add_argument("--csv", help="CSV with columns name,N,H,W,C,K,R,S,stride,padding,groups")
    t.add_argument("--model", help="a .keras/.h5 file, or package.module:attr naming a model (or a function "
                   "making one)")
    t.add_argument("--input-shape", help="model input shape, batch first, e.g. 1,128,128,3 (default: the "
                   "model's own, where it is fixed)")
    t.add_argument("--batch", type=_batches, help="override the batch size; with --model, several: 1,8")
    t.add_argument("--layout", default="channels_last", choices=["channels_last", "channels_first"])
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--retune", action="store_true", help="measure again even if decisions are stored")
    t.add_argument("--no-peak", action="store_true", help="do not measure the sgemm peak")
    t.add_argument("--prune", type=float, metavar="FACTOR", help="do not measure candidates the cost model "
                   "estimates slower than FACTOR x the best estimate (NBCONV_TUNE_PRUNE; > 1)")
    from .distributed.tune_cli import add_arguments
    add_arguments(t)        # --cluster / --local-cluster: fleet tuning on Dask

    e = sub.add_parser("explain", help="every candidate for a problem key or a layer spec")
    e.add_argument("target", help="a problem key, or a layer spec such as \"Conv2D(64, 3, padding='same')\"")
    e.add_argument("--input-shape", help="layer input shape, batch first, e.g. 1,56,56,64")
    e.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    e.add_argument("--no-measure", action="store_true", help="show stored measurements only")
    e.add_argument("--no-peak", action="store_true", help="do not measure the sgemm peak / copy bandwidth")

    d = sub.add_parser("db", help="the tuning database")
    d.add_argument("action", choices=["list", "export", "import", "merge", "clear", "path"])
    d.add_argument("file", nargs="?", help="JSON lines file for export/import ('-': stdout/stdin); "
                   "an SQLite tuning database for merge")
    d.add_argument("--all", action="store_true", help="every machine's rows, not only this machine's")

    from .estimate_check import add_arguments as add_check
    add_check(sub)

    sub.add_parser("overhead", help="dispatch cost of a decided call (nbconv.reports.overhead)",
                   add_help=False)

    sub.add_parser("bench", help="benchmarks against PyTorch (nbconv.reports.compare)", add_help=False)
    sub.add_parser("report", help="the performance report (nbconv.reports.cli)", add_help=False)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # bench and report take their own arguments: hand over everything after the word
    for i, word in enumerate(argv):
        if word in DELEGATED:
            if i == 0 or (i == 2 and argv[0] == "--db"):
                if i == 2:
                    from . import knobs
                    knobs.set_tuning_db(argv[1])
                rest = argv[i + 1:]
                module = _bench_module(rest) if word == "bench" else DELEGATED[word]
                return _delegate(module, rest, word)
            break
    a = build_parser().parse_args(argv)
    if a.db:
        from . import knobs, ops
        knobs.set_tuning_db(a.db)
        ops.reset()
    if getattr(a, "prune", None) is not None:
        if not (a.prune == 0 or a.prune > 1):
            raise SystemExit(f"nbconv: --prune must be 0 (off) or > 1. Received: --prune {a.prune}")
        from . import knobs, ops
        knobs.set_prune(a.prune)
        ops.reset()
    try:
        from . import commands
        from .estimate_check import cmd_estimate_check
        run = {"tune": commands.cmd_tune, "explain": commands.cmd_explain, "db": commands.cmd_db,
               "estimate-check": cmd_estimate_check}
        return run[a.command](a)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
