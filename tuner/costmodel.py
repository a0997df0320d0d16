"""A cost model fitted on stored timings: predicts a candidate's seconds per call on a problem
that was never measured (mode `estimate`, and pruning in mode `measure`).

One model per implementation, over named numeric features that the application computes from
(problem key, impl name, config) (`Features`; the tuner knows nothing of what a problem is):

    log(seconds) = ridge regression on the standardised features
                   + the similarity-weighted mean residual of the `neighbours` nearest
                     training rows of that impl (a nearest-neighbour correction for what a
                     linear model misses: a shape seen at another batch, a config's cliff).

Features are best given on a log scale (log FLOPs, log channels, ...): the linear part is then
a power law, time ~ FLOPs^a * bytes^b * ... Rows need `key`, `impl`, `config` (dict or JSON
text), `status` and `median_s`; only status "ok" rows with a median are used. An impl with
fewer than `min_rows` usable rows gets no model: `predict` answers None for it.

`CostModel.to_json()` / `from_json()` round-trip it (the tuner keeps it in the DB's meta table).
"""
from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .db import TuningDB
from .rows import config_json

if TYPE_CHECKING:
    from .registry import Impl
    from .settings import Settings
    from .tuner import Tuner

Features = Callable[[str, str, dict], "Mapping[str, float] | None"]   # (key, impl, config) -> features


@dataclass
class ImplModel:
    names: list[str]          # feature names, in column order
    mean: list[float]
    scale: list[float]
    coef: list[float]
    bias: float
    points: list[list[float]]  # the standardised training rows (for the neighbour correction)
    resid: list[float]         # their residuals of the linear part (log seconds)

    def vector(self, feats: Mapping[str, float]) -> np.ndarray:
        x = np.array([float(feats.get(n, 0.0)) for n in self.names])
        return (x - np.array(self.mean)) / np.array(self.scale)

    def log_seconds(self, feats: Mapping[str, float], neighbours: int) -> float:
        z = self.vector(feats)
        y = self.bias + float(z @ np.array(self.coef))
        if neighbours and self.points:
            d2 = ((np.array(self.points) - z) ** 2).sum(axis=1)
            near = np.argsort(d2, kind="stable")[:neighbours]
            w = 1.0 / (1.0 + d2[near])        # close rows correct fully, far ones hardly
            y += float((w * np.array(self.resid)[near]).sum() / (w.sum() + 1.0))
        return y


def _config(c: Any) -> dict:
    return json.loads(c) if isinstance(c, str) else dict(c or {})


def fit_impl(xs: list[Mapping[str, float]], ys: list[float], ridge: float) -> ImplModel:
    """Ridge regression of ys (log seconds) on the features xs; constant features are dropped."""
    names = sorted({n for x in xs for n in x})
    raw = np.array([[float(x.get(n, 0.0)) for n in names] for x in xs]).reshape(len(xs), len(names))
    y = np.array(ys, dtype=float)
    mean, scale = raw.mean(axis=0), raw.std(axis=0)
    keep = scale > 1e-9
    names = [n for n, k in zip(names, keep, strict=True) if k]
    mean, scale = mean[keep], scale[keep]
    z = (raw[:, keep] - mean) / scale
    bias = float(y.mean())
    lam = ridge * len(ys)
    coef = np.linalg.solve(z.T @ z + lam * np.eye(len(names)), z.T @ (y - bias)) if names else np.zeros(0)
    resid = y - bias - z @ coef
    return ImplModel(names, mean.tolist(), scale.tolist(), coef.tolist(), bias, z.tolist(), resid.tolist())


class CostModel:
    """Per-impl models; `predict(key, impl, config, features)` -> seconds or None."""

    def __init__(self, impls: dict[str, ImplModel], *, neighbours: int = 3, rows: int = 0):
        self.impls = impls
        self.neighbours = neighbours
        self.rows = rows          # training rows used (for the record)

    @classmethod
    def fit(cls, rows: Iterable[Mapping[str, Any]], features: Features, *, ridge: float = 1e-2,
            neighbours: int = 3, min_rows: int = 3) -> CostModel:
        data: dict[str, tuple[list, list]] = {}
        for r in rows:
            med = r.get("median_s")
            if r.get("status") != "ok" or not med or med <= 0:
                continue
            feats = features(r["key"], r["impl"], _config(r["config"]))
            if feats is None:
                continue
            xs, ys = data.setdefault(r["impl"], ([], []))
            xs.append(feats)
            ys.append(math.log(med))
        impls = {name: fit_impl(xs, ys, ridge) for name, (xs, ys) in data.items() if len(ys) >= min_rows}
        return cls(impls, neighbours=neighbours, rows=sum(len(v[1]) for v in data.values()))

    def predict(self, key: str, impl: str, config: dict, features: Features) -> float | None:
        m = self.impls.get(impl)
        if m is None:
            return None
        feats = features(key, impl, dict(config))
        if feats is None:
            return None
        return math.exp(m.log_seconds(feats, self.neighbours))

    def to_json(self) -> str:
        return json.dumps({"neighbours": self.neighbours, "rows": self.rows,
                           "impls": {n: vars(m) for n, m in sorted(self.impls.items())}})

    @classmethod
    def from_json(cls, text: str) -> CostModel:
        d = json.loads(text)
        return cls({n: ImplModel(**m) for n, m in d["impls"].items()}, neighbours=d["neighbours"],
                   rows=d["rows"])


def load_or_fit(dbs: list, fp: str, op: str, hashes: Mapping[str, str], features: Features,
                stamp: str | None = None) -> CostModel:
    """The model of `op` on machine `fp`, fitted on the stored rows in `dbs` (TuningDBs, the first
    one the tuner's own) whose impl has the source hash in `hashes` ({impl name: current hash}:
    rows of edited impls are left out). It is kept in the first DB's meta table with the `stamp`
    of the rows it was fitted on (default: `stamp_of`) and reused while that holds."""
    k = f"costmodel:{fp}:{op}"
    stamp = stamp or stamp_of(dbs, fp, op, hashes)
    text = dbs[0].meta(k)
    if text:
        saved = json.loads(text)
        if saved["stamp"] == stamp:
            return CostModel.from_json(saved["model"])
    rows = [r for db in dbs for r in db.rows("measurements", fp)
            if r["op"] == op and hashes.get(r["impl"]) == r["source_hash"]]
    model = CostModel.fit(rows, features)
    dbs[0].put_meta(k, json.dumps({"stamp": stamp, "model": model.to_json()}))
    return model


def stamp_of(dbs: list, fp: str, op: str, hashes: Mapping[str, str]) -> str:
    """Changes when a measurement of (fp, op) is written to one of `dbs` or an impl is edited."""
    return json.dumps([db.stamp(fp, op) for db in dbs] + sorted(hashes.items()))


def model_of(tuner: Tuner, op: str, problem: Any = None) -> CostModel | None:
    """`tuner`'s cost model of `op` on the machine of `problem`, fitted on its DB's rows and those
    of `settings.model_db` (refitted when they change); None without `features` or on a DB failure."""
    if tuner.features is None:
        return None
    fp, extra = tuner.fp(problem), tuner.settings.model_db
    hashes = {i.name: i.source_hash for i in tuner.registry.impls(op)}
    try:
        dbs = [tuner.db] + ([TuningDB(extra)] if extra else [])
        stamp = stamp_of(dbs, fp, op, hashes)
        hit = tuner._models.get((fp, op, extra))
        if hit is None or hit[0] != stamp:
            model = load_or_fit(dbs, fp, op, hashes, tuner.features, stamp)
            hit = tuner._models[(fp, op, extra)] = (stamp, model)
    except sqlite3.Error:
        return None
    return hit[1]


def predictions(tuner: Tuner, op: str, problem: Any, cands: Sequence[tuple[Impl, dict]]) -> dict:
    """{(impl name, config json): predicted seconds} for the candidates `tuner`'s model covers."""
    model = model_of(tuner, op, problem)
    if model is None or tuner.features is None:
        return {}
    out = {}
    for impl, cfg in cands:
        t = model.predict(problem.key(), impl.name, cfg, tuner.features)
        if t is not None:
            out[(impl.name, config_json(cfg))] = t
    return out


def pruned(tuner: Tuner, op: str, problem: Any, cands: Sequence[tuple[Impl, dict]],
           todo: Sequence[tuple[Impl, dict]], s: Settings) -> dict:
    """{(impl name, config json): why} of the candidates in `todo` whose prediction is above
    `s.prune` x the best prediction among `cands` (none when pruning is off or nothing is
    predicted; the best predicted one never is; unpredicted ones never are)."""
    pred = predictions(tuner, op, problem, cands) if s.prune and len(cands) > 1 else {}
    if not pred:
        return {}
    best = min(pred.values())
    return {k: f"pruned (estimate {t * 1e3:.4g} ms vs best {best * 1e3:.4g} ms)"
            for k in ((i.name, config_json(c)) for i, c in todo)
            if (t := pred.get(k)) is not None and t > s.prune * best}
