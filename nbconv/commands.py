"""The tuning commands of the `nbconv` command line: tune, explain and db (nbconv.cli parses)."""
from __future__ import annotations

import ast
import importlib
import json
import sys
import time


# -- small output helpers --------------------------------------------------------------------
def table(headers, rows, out=None):
    out = out or sys.stdout
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


def fmt(v, spec):
    return "" if v is None else format(v, spec)


def progress(items, desc, unit="shape"):
    """tqdm if installed, else a plain counter on stderr."""
    try:
        from tqdm import tqdm
        return tqdm(items, desc=desc, unit=unit, file=sys.stderr)
    except ImportError:
        def counter():
            n = len(items)
            for i, item in enumerate(items, 1):
                print(f"{desc}: {i}/{n}", file=sys.stderr, flush=True)
                yield item
        return counter()


def ints(text: str, what: str) -> tuple:
    try:
        vals = tuple(int(v) for v in text.replace("(", "").replace(")", "").split(",") if v.strip())
    except ValueError:
        raise SystemExit(f"nbconv: {what} must be comma-separated integers, e.g. 1,56,56,64. "
                         f"Received: {text!r}") from None
    if not vals or any(v < 0 for v in vals):
        raise SystemExit(f"nbconv: {what} must be non-negative integers. Received: {text!r}")
    return vals


def _yardstick(name: str):
    """nbconv.reports.yardsticks' sgemm or copy Yardstick (value, spread), measured now; None when the
    reports package is not installed. Imported at call time: the library never imports it."""
    try:
        ys = importlib.import_module("nbconv.reports.yardsticks")
    except ImportError:
        return None
    return getattr(ys, name)()


def _peak(enabled: bool):
    return _yardstick("sgemm") if enabled else None


def _gflops(p, median_s):
    if not median_s:
        return None
    return p.flops() / median_s / 1e9


def _decision_line(d) -> str:
    from nbconv.tuner import label
    if d is None:
        return "winner: none"
    text = f"winner: {d.name} ({d.how})"
    if d.partner is not None:
        partner = label(*d.partner)
        ratio = f", partner/winner median {d.margin:.3f}" if d.margin else ""
        pval = f", p={d.p_value:.3g}" if d.p_value is not None else ""
        if d.tie:
            more = f" and {len(d.tied) - 1} more" if len(d.tied) > 1 else ""
            text += (f"; TIE with {partner}{more}{ratio}{pval} "
                     "(broken by priority, then name, then config order)")
        else:
            text += f"; significantly faster than runner-up {partner}{ratio}{pval}"
    if d.note:
        text += f"; {d.note}"
    return text


# -- layer specs and models ---------------------------------------------------------------------
def _layer_from_spec(spec: str):
    """A layer from text such as "Conv2D(64, 3, padding='same')" (literal arguments only)."""
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as e:
        raise SystemExit(f"nbconv: cannot parse layer spec {spec!r}: {e.msg}") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
        raise SystemExit("nbconv: a layer spec looks like \"Conv2D(64, 3, padding='same')\". "
                         f"Received: {spec!r}")
    name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except ValueError:
        raise SystemExit(f"nbconv: layer spec arguments must be literals. Received: {spec!r}") from None
    try:
        layers = importlib.import_module("nbconv.layers")
    except ImportError as e:
        raise SystemExit(f"nbconv: the layers package is not available ({e})") from None
    cls = getattr(layers, name, None)
    if cls is None:
        raise SystemExit(f"nbconv: no layer named {name!r} in nbconv.layers")
    return cls(*args, **kwargs)


def _problems_of_layers(layers_, x):
    """Run layers one by one on x, collecting each ops call's (op, Problem)."""
    from . import ops
    found = []
    for layer in progress(list(layers_), "tuning layers", unit="layer"):
        with ops.recording() as seen:
            x = layer(x)
        found.extend((getattr(layer, "name", type(layer).__name__), op, p) for op, p in seen)
    return found


def _random_input(shape, dtype):
    import numpy as np
    return np.random.default_rng(0).uniform(-1, 1, shape).astype(dtype)


from .model_tuning import load_model_target as _load_model  # noqa: E402  (tune_cli uses it)
from .model_tuning import model_problems as _model_problems  # noqa: E402


# -- subcommands ------------------------------------------------------------------------------
def cmd_tune(a) -> int:
    if isinstance(a.batch, tuple) and not a.model:
        raise SystemExit(f"nbconv: several batch sizes ({a.batch}) need --model")
    fleet = getattr(a, "cluster", None) or getattr(a, "local_cluster", None) is not None
    if fleet and isinstance(a.batch, tuple):
        raise SystemExit("nbconv: fleet tuning takes one --batch size")
    if fleet:
        from .distributed.tune_cli import cmd_fleet_tune
        return cmd_fleet_tune(a)
    from . import ops
    rows = []
    if a.model:
        found = _model_problems(_load_model(a.model), a)
        decided = [(name, op, p, ops.decision(op, p)) for name, op, p in found]
    else:
        from .shapes import load_shapes
        shapes = load_shapes(a.csv, batch=a.batch, layout=a.layout, dtype=a.dtype)
        decided = []
        for name, p in progress(shapes, "tuning"):
            decided.append((name, "conv", p, ops.tuner().select("conv", p, ops.make_args("conv", p),
                                                                retune=a.retune)))
    ys = _peak(not a.no_peak)
    peak = ys and ys.value
    from nbconv.tuner import config_json, label
    recs = {(r["key"], r["op"], r["impl"], config_json(r["config"])): r for r in ops.records()}
    for name, op, p, d in decided:
        r = recs.get((p.key(), op, d.impl.name, config_json(d.config)))
        med = r["median_s"] if r else None
        g = _gflops(p, med)
        rows.append([name, op, d.name, d.how, f"{len(d.tied) + 1}-way" if d.tie else "",
                     label(*d.partner) if d.partner else "", fmt(d.margin, ".3f"),
                     fmt(med and med * 1e3, ".3f"), fmt(g, ".1f"),
                     fmt(g and peak and 100 * g / peak, ".0f")])
    print(f"tuning database: {ops.tuner().db.path}")
    if peak:
        print(f"sgemm peak: {peak:.1f} GFLOP/s ±{100 * ys.spread:.1f} % (numpy, measured now)")
    table(["shape", "op", "winner", "how", "tie", "partner", "margin", "median ms", "GFLOP/s", "% peak"],
           rows)
    return 0


def cmd_explain(a) -> int:
    from . import ops
    from .spec import problem_from_key
    target = a.target.strip()
    if "(" not in target and "/" in target:
        try:
            p = problem_from_key(target)
        except (ValueError, IndexError, KeyError) as e:
            raise SystemExit(f"nbconv: {target!r} is not a problem key ({type(e).__name__}: {e})") from None
        problems = [(target, p.op, p)]
    else:
        if not a.input_shape:
            raise SystemExit("nbconv: explaining a layer spec needs --input-shape (batch first), "
                             "e.g. --input-shape 1,56,56,64")
        layer = _layer_from_spec(target)
        problems = _problems_of_layers([layer], _random_input(ints(a.input_shape, "--input-shape"), a.dtype))
        if not problems:
            print(f"{target}: calls no kernel (nothing to tune)")
            return 0
    for name, op, p in problems:
        ex = ops.explain(op, p, measure=not a.no_measure)
        # % of peak: compute-bound ops against the sgemm peak, pooling against copy bandwidth
        pooling = op in ("maxpool", "avgpool")
        ys = None if a.no_peak else _yardstick("copy" if pooling else "sgemm")
        peak = ys and ys.value
        print(f"{name}: {op} {p.key()}")
        peak_text = ""
        if peak:
            peak_text = f"; % peak is of {'copy bandwidth' if pooling else 'sgemm peak'} " \
                        f"{peak:.1f} {ys.unit} ±{100 * ys.spread:.1f} % (measured now)"
        print(f"  {p.flops() / 1e9:.4g} GFLOP, {p.bytes() / 1e6:.4g} MB moved per call{peak_text}")
        rows = []
        for r in ex["rows"]:
            g = _gflops(p, r["median_s"])
            gbs = p.bytes() / r["median_s"] / 1e9 if r["median_s"] else None
            rate = gbs if pooling else g
            if r["winner"]:
                mark = "WINNER"
            elif r["partner"]:
                mark = "tie partner" if ex["decision"].tie else "runner-up"
            else:
                mark = "tied" if r["tied"] else ""
            rows.append([r["label"], "yes" if r["applies"] else "no", r["status"] or "",
                         fmt(r["compile_s"], ".3f"), fmt(r["estimate_s"] and r["estimate_s"] * 1e3, ".4f"),
                         fmt(r["median_s"] and r["median_s"] * 1e3, ".4f"),
                         fmt(None if r["spread"] is None else 100 * r["spread"], ".1f"),
                         fmt(g, ".2f"), fmt(gbs, ".2f"), fmt(rate and peak and 100 * rate / peak, ".1f"),
                         fmt(r["error"], ".2e"), mark, r["reason"] if r["reason"] != "" else ""])
        table(["candidate", "applies", "status", "compile s", "estimate ms", "median ms", "IQR %",
               "GFLOP/s", "GB/s", "% peak", "error", "", "note"], rows)
        print("  " + (_decision_line(ex["decision"]) if ex["decision"] else f"no decision: {ex['error']}"))
        if (tr := ex.get("transfer")) and tr["copy_in_s"] is not None:   # "cuda": times above are on-device
            print(f"  numpy in/out adds {tr['copy_in_s'] * 1e3:.4f} ms copy in, "
                  f"{tr['copy_out_s'] * 1e3:.4f} ms copy out")
        print()
    return 0


def cmd_db(a) -> int:
    from . import ops
    t = ops.tuner()
    db = t.db
    fp = None if getattr(a, "all", False) else t.fp()
    if a.action == "path":
        print(db.path)
    elif a.action == "list":
        rows = []
        for d in db.decisions(fp):
            from nbconv.tuner import label
            cfg = json.loads(d["config"])
            partner = label(d["partner_impl"], json.loads(d["partner_config"])) if d["partner_impl"] else ""
            rows.append([d["op"], d["key"], label(d["impl"], cfg), "yes" if d["tie"] else "", partner,
                         fmt(d["margin"], ".3f"), d["fp"],
                         time.strftime("%Y-%m-%d %H:%M", time.localtime(d["created"]))])
        print(f"tuning database: {db.path} (this machine: {t.fp()})")
        table(["op", "key", "winner", "tie", "partner", "margin", "fingerprint", "created"], rows)
    elif a.action == "export":
        if a.file in (None, "-"):
            n = db.export(sys.stdout, fp)
        else:
            with open(a.file, "w") as f:
                n = db.export(f, fp)
            print(f"exported {n} rows to {a.file}")
    elif a.action in ("import", "merge"):
        from nbconv.tuner import merge, merge_export, registry
        what = "JSON lines from `nbconv db export`" if a.action == "import" else "another tuning .sqlite"
        if not a.file:
            raise SystemExit(f"nbconv: db {a.action} needs a FILE ({what})")
        kw = {"registry": registry, "settings": t.settings}
        try:
            if a.action == "merge":
                counts = merge(db, a.file, **kw)
            else:
                with (sys.stdin if a.file == "-" else open(a.file)) as f:
                    counts = merge_export(db, f, **kw)
        except (OSError, ValueError) as e:
            raise SystemExit(f"nbconv: db {a.action} failed: {e}") from None
        t.forget()
        print("merged " + ", ".join(f"{n} {table}" for table, n in counts.items())
              + " (rows written; samples of the same candidate united, decisions recomputed;"
              " rows of other machines kept apart)")
    elif a.action == "clear":
        n = db.clear(fp)
        t.forget()
        print(f"deleted {n} rows" + (" (all machines)" if fp is None else f" of this machine ({fp})"))
    return 0
