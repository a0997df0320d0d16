"""`nbconv bench --model PATH` / `nbconv bench --networks all`: whole models end to end.

    nbconv bench --model my.keras [--batch 1,8] [--threads 2]
    nbconv bench --networks all [--dir /tmp/nbconv-networks]    # the nine keras.applications networks

Per model and batch size: images/s of nbconv (`load_model(PATH).predict`, its rewrites on), of the
same file in Keras (`keras.saving.load_model(PATH)`, torch backend, called as `model(x,
training=False)` under `torch.inference_mode()`: Keras's fastest inference path, faster than its
`predict`) and of the same graph and weights as PyTorch eager modules in NCHW
(`nbconv.reports.torch_model`; "n/a" with the reason where a layer has no translation). All three
are measured by the tuner's loop (`nbconv.reports.timing`), sampled in turns, `--samples` samples
each; the first call (nbconv's tuning and compiling; Keras's tracing) and a warm-up are not timed.
`err` is nbconv's output against Keras's, relative to the largest magnitude (the tests' measure).

`--networks` builds each network with `weights=None` at a small input size, random
BatchNormalization statistics (seeded), saves it under `--dir` (reused when there) and benches it;
nbconv's first, untimed call tunes every layer shape as `nbconv tune --model PATH` does.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

from nbconv import reference, threads

from . import timing, torch_model

# (name, input size, keyword arguments): the sizes the tests use, the smallest each network allows
NETWORKS = [("VGG16", 32, {"include_top": False}), ("ResNet50", 32, {}), ("MobileNet", 32, {}),
            ("MobileNetV2", 32, {}), ("DenseNet121", 32, {}), ("Xception", 71, {}), ("InceptionV3", 75, {}),
            ("EfficientNetB0", 32, {}), ("MobileNetV3Small", 32, {})]


def realistic_batchnorm(km, seed=0):
    """BatchNormalization statistics of a Keras model away from the identity (seeded), so that a
    misplaced or wrongly folded one shows in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in km.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            stats = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.uniform(-0.2, 0.2, n),
                     "moving_mean": rng.uniform(-0.2, 0.2, n), "moving_variance": rng.uniform(0.5, 1.5, n)}
            layer.set_weights([stats[v.name].astype("float32") for v in layer.weights])


def build_network(name, size, kwargs, directory):
    """Save keras.applications.<name> (weights=None, logits, seeded BatchNormalization statistics)."""
    path = os.path.join(directory, f"{name}_{size}.keras")
    if os.path.exists(path):
        return path
    import keras
    if kwargs.get("include_top", True):
        kwargs = {**kwargs, "classifier_activation": None}
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), **kwargs)
    realistic_batchnorm(model)
    os.makedirs(directory, exist_ok=True)
    model.save(path)
    return path


def _keras_call(km, x):
    import torch
    xt = torch.from_numpy(x)

    def call():
        with torch.inference_mode():
            return km(xt, training=False)
    return call


def bench_model(path, batches, args, out=None):
    """Rows {model, batch, err, nbconv, keras, torch (images/s or None), ...} for one saved model."""
    out = out or sys.stdout
    import keras

    from nbconv.models import load_model
    nb, km = load_model(path), keras.saving.load_model(path)
    eager, why = torch_model.convert(nb)
    name = os.path.basename(str(path))
    rows = []
    for b in batches:
        shape = (b, *nb.input_shape[1:])
        x = np.random.default_rng(b).uniform(-1, 1, shape).astype("float32")
        y = nb.predict(x, batch_size=b)                 # tunes and compiles: not timed
        expect = np.asarray(_keras_call(km, x)().cpu().numpy())
        err = reference.rel_error(y, expect)
        makers = {"nbconv": lambda x=x, b=b: lambda: nb.predict(x, batch_size=b),
                  "keras": lambda x=x: _keras_call(km, x)}
        note = why
        if eager is not None:
            torch_err = reference.rel_error(torch_model.output(eager, x), expect)
            if torch_err <= 1e-3:
                makers["torch"] = lambda x=x: torch_model.call(eager, x)
            else:   # a translation that does not compute the same model is not timed
                note = f"its output differs from Keras's by {torch_err:.1e}"
        ms = timing.measure_many(makers, timing.exactly(args.samples, min_sample_s=args.min_time),
                                 timer=timing.timer(args.clock))
        bad = [f"{k}: {m.reason}" for k, m in ms.items() if m.status != timing.OK]
        if bad:
            raise RuntimeError(f"nbconv bench --model {name}: " + "; ".join(bad))
        ips = {k: b / m.median_s for k, m in ms.items()}
        row = dict(model=name, batch=b, err=err, nbconv=ips["nbconv"], keras=ips["keras"],
                   torch=ips.get("torch"), vs_keras=ips["nbconv"] / ips["keras"],
                   vs_torch=ips["nbconv"] / ips["torch"] if "torch" in ips else None,
                   verdict=timing.verdict(ms["nbconv"], ms["keras"]), torch_note=note or "",
                   spread=max(m.spread for m in ms.values()))
        rows.append(row)
        print(_line(row), file=out, flush=True)
    return rows


HEADER = (f"{'model':26s} {'N':>2s} {'err':>8s} {'nbconv img/s':>12s} {'keras img/s':>12s} "
          f"{'torch img/s':>12s} {'vs keras':>8s} {'vs torch':>8s} {'±%':>4s} verdict")


def _line(r):
    torch = "n/a" if r["torch"] is None else f"{r['torch']:.1f}"
    vs_torch = "n/a" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}"
    verdict = {"a": "nbconv", "b": "keras", "tie": "tie"}[r["verdict"]]
    return (f"{r['model']:26s} {r['batch']:2d} {r['err']:8.1e} {r['nbconv']:12.1f} {r['keras']:12.1f} "
            f"{torch:>12s} {r['vs_keras']:8.2f} {vs_torch:>8s} {100 * r['spread']:4.0f} {verdict}"
            + (f"  (torch: {r['torch_note']})" if r["torch_note"] else ""))


def parse(argv):
    ap = argparse.ArgumentParser(prog="nbconv bench --model", description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a .keras or .h5 file (repeatable)")
    ap.add_argument("--networks", help="'all' or comma-separated keras.applications names of the nine")
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "nbconv-networks"),
                    help="where --networks saves the models it builds (reused)")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes (default 1,8)")
    timing.add_timing_args(ap, samples=7, min_time=0.05)
    a = ap.parse_args(argv)
    if not a.model and not a.networks:
        ap.error("give --model PATH or --networks all")
    timing.check_timing_args(ap, a)
    try:
        a.batches = [int(v) for v in a.batch.split(",")]
    except ValueError:
        ap.error(f"--batch must be comma-separated integers. Received: {a.batch!r}")
    if not a.batches or min(a.batches) < 1:
        ap.error(f"--batch sizes must be >= 1. Received: {a.batch!r}")
    known = {n for n, _, _ in NETWORKS}
    a.network_list = [] if not a.networks else (
        [n for n, _, _ in NETWORKS] if a.networks == "all" else a.networks.split(","))
    unknown = set(a.network_list) - known
    if unknown:
        ap.error(f"--networks: unknown {sorted(unknown)}; known: {sorted(known)}")
    return a


def main(argv=None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    threads.set_threads(a.threads)
    import torch
    torch.set_num_threads(a.threads)
    paths = list(a.model or [])
    paths += [build_network(n, s, kw, a.dir) for n, s, kw in NETWORKS if n in a.network_list]
    print(f"{a.threads} thread(s) each (Numba + BLAS for nbconv, torch.set_num_threads), {a.clock} clock, "
          f"{a.samples} interleaved samples of >= {a.min_time} s; load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores", flush=True)
    print(HEADER, flush=True)
    rows = [r for p in paths for r in bench_model(p, a.batches, a)]
    worst = min(r["vs_keras"] for r in rows)
    print(f"nbconv / keras: worst {worst:.2f}x over {len(rows)} rows (target >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
