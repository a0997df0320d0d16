"""Shape sets for tuning, benchmarks and reports: CSV rows -> (name, Problem)."""
from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

from .spec import make_problem

REFERENCE = "reference_shapes.csv"


def reference_path() -> Path:
    """The package's own copy of the reference Conv2D shape set."""
    return Path(str(resources.files("nbconv") / "data" / REFERENCE))


def load_shapes(path=None, *, batch=None, layout="channels_last", dtype="float32"):
    """[(name, Problem)] from a CSV with columns name,N,H,W,C,K,R,S,stride,padding,groups.

    `batch` overrides N; `layout` picks channels_last (NHWC) or channels_first (NCHW).
    """
    path = Path(path) if path else reference_path()
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            n = int(batch or row["N"])
            h, w, c = int(row["H"]), int(row["W"]), int(row["C"])
            shape = (n, h, w, c) if layout == "channels_last" else (n, c, h, w)
            s = int(row["stride"])
            p = make_problem("conv", shape, rank=2, kernel=(int(row["R"]), int(row["S"])),
                             strides=(s, s), padding=row["padding"], out_channels=int(row["K"]),
                             groups=int(row.get("groups") or 1), layout=layout, dtype=dtype)
            out.append((row["name"], p))
    return out
