"""The DeepBench and benchdnn Conv2D shape lists (`/work/shared/shapes/`, see its README) as
Problems, and a seeded sample stratified across them (for `nbconv estimate-check`).

Each shape gets a stable name `<list>:<stratum>:<row>` (the stratum is DeepBench's set or
benchdnn's network file), so a sample can be stated and re-made exactly.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

from .spec import Problem

DEEPBENCH, BENCHDNN = "deepbench_conv.csv", "benchdnn_conv.csv"


def _problem(n, c, h, w, k, r, s, st, pads, dil, groups, layout, dtype) -> Problem:
    return Problem(op="conv", rank=2, batch=n, in_channels=c, out_channels=k, spatial=(h, w),
                   kernel=(r, s), strides=st, dilation=dil, pads=pads, groups=groups,
                   layout=layout, dtype=dtype)


def load_list(path, *, batch=None, layout="channels_last", dtype="float32"):
    """[(name, stratum, Problem)] of one list (its format is told by the file name)."""
    path = Path(path)
    out = []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        v = {k: int(x) for k, x in row.items() if x and x.lstrip("-").isdigit()}
        if path.name == DEEPBENCH:
            stratum = "deepbench:" + row["set"]
            p = _problem(batch or v["N"], v["C"], v["H"], v["W"], v["K"], v["R"], v["S"],
                         (v["stride_h"], v["stride_w"]), ((v["pad_h"],) * 2, (v["pad_w"],) * 2),
                         (1, 1), 1, layout, dtype)
        elif path.name == BENCHDNN:
            stratum = "benchdnn:" + row["file"].removeprefix("shapes_")
            p = _problem(batch or v["mb"], v["ic"], v["ih"], v["iw"], v["oc"], v["kh"], v["kw"],
                         (v["sh"], v["sw"]), ((v["ph"], v["ph_r"]), (v["pw"], v["pw_r"])),
                         (v["dh"] + 1, v["dw"] + 1), v["groups"], layout, dtype)
        else:
            raise ValueError(f"load_list: `path` must name {DEEPBENCH} or {BENCHDNN}. "
                             f"Received: {str(path)!r}")
        if p.valid() and all(lo >= 0 and hi >= 0 for lo, hi in p.pads):
            out.append((f"{stratum}:{i}", stratum, p))
    return out


def sample(shapes, n: int, *, seed: int = 0, max_flops: float | None = None, exclude=()):
    """A seeded sample of `n` distinct problems from [(name, stratum, Problem)], stratified: the
    strata take turns (each shuffled by `seed`), so every list and network is represented.
    Problems above `max_flops`, repeats of a problem already taken and keys in `exclude` are
    skipped. Returns [(name, stratum, Problem)] in a stable order."""
    rng = random.Random(seed)
    strata: dict = {}
    for item in shapes:
        if max_flops is None or item[2].flops() <= max_flops:
            strata.setdefault(item[1], []).append(item)
    queues = [rng.sample(v, len(v)) for _, v in sorted(strata.items())]
    rng.shuffle(queues)
    seen, out = set(exclude), []
    while len(out) < n and any(queues):
        for q in queues:
            while q and len(out) < n:
                item = q.pop()
                if item[2].key() not in seen:
                    seen.add(item[2].key())
                    out.append(item)
                    break
    return out
