"""A cost model fitted on stored timings: predicts a candidate's seconds per call on a problem
that was never measured (mode `estimate`, and pruning in mode `measure`).

Over named numeric features that the application computes from (problem key, impl name,
config) (`Features`; the tuner knows nothing of what a problem is; impl "" and config {} ask
for the problem's own features):

    log(seconds) = fastest(problem) + slowdown_impl(problem, config)
    fastest:   log seconds of the problem's fastest measured candidate, less the feature named
               `offset` (e.g. log FLOPs: it then fits log seconds per FLOP of the best kernel)
    slowdown:  one model per impl: log(its seconds / the fastest's) on the same problem

each a ridge regression on the standardised features plus the similarity-weighted mean residual
of the `neighbours` nearest training rows (a nearest-neighbour correction for what a linear
model misses: a shape seen at another batch, a config's cliff). Then the slowdown is blended
with the measured slowdowns of the same (impl, config) on the `similar` training problems
nearest in the problem's own features (weight 1 / (1 + squared distance) each, the model's
own estimate weight `prior`): choosing a candidate is ranking, and the candidate that was
fastest on the most similar measured problems is the best single guess, where the regression
of one impl cannot see how close its rival's cliff is (measured at 1 thread, CPU clock: on 100
held-out DeepBench/benchdnn shapes it took the choices within 10 % of the winner from 76 to 87 %,
5-fold over all 173 measured shapes from 78 to 83 %). `predict_all` ranks a problem's
candidates so; `predict` estimates one alone. Features are best given on a log scale (log
FLOPs, log channels, ...): the linear part is then a power law. Rows need `key`, `impl`,
`config` (dict or JSON text), `status` and `samples` or `median_s` (`seconds`); only status
"ok" rows with a time are used. An impl with fewer than `min_rows` usable rows gets no model:
`predict` answers None for it, `predict_all` leaves it out.

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
from .rows import config_json, samples_of

if TYPE_CHECKING:
    from .registry import Impl
    from .settings import Settings
    from .tuner import Tuner

MODEL_VERSION = 2     # of the stored model's form: a stored model of another version is refitted
OFFSET = "offset"     # a feature entering with coefficient 1 into the fastest time (e.g. log FLOPs)
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
    lo: list[float]            # the standardised training range of each feature
    hi: list[float]

    def vector(self, feats: Mapping[str, float]) -> np.ndarray:
        """Standardised, and clipped to the training range widened by one standard deviation:
        a linear fit extrapolates wildly (a 1-channel input predicted 10^6 x too slow)."""
        x = np.array([float(feats.get(n, 0.0)) for n in self.names])
        return np.clip((x - np.array(self.mean)) / np.array(self.scale), np.array(self.lo) - 1,
                       np.array(self.hi) + 1)

    def log_seconds(self, feats: Mapping[str, float], neighbours: int) -> float:
        z = self.vector(feats)
        y = self.bias + float(z @ np.array(self.coef))
        if neighbours and self.points:
            d2 = ((np.array(self.points) - z) ** 2).sum(axis=1)
            near = np.argsort(d2, kind="stable")[:neighbours]
            w = 1.0 / (1.0 + d2[near])        # close rows correct fully, far ones hardly
            y += float((w * np.array(self.resid)[near]).sum() / (w.sum() + 1.0))
        return y


def seconds(row: Mapping[str, Any]) -> float | None:
    """A row's time for the model: its fastest sample (on a shared machine, noise only adds time:
    a preempted sample can be 30x the others, and one in three of them moves a median), else
    `median_s`."""
    samples = samples_of(dict(row)) if row.get("samples") is not None else []
    return min(samples) if samples else row.get("median_s")


def _config(c: Any) -> dict:
    return json.loads(c) if isinstance(c, str) else dict(c or {})


def fit_impl(xs: list[Mapping[str, float]], ys: list[float], ridge: float) -> ImplModel:
    """Ridge regression of ys (log seconds) on the features xs; constant features are dropped."""
    names = sorted({n for x in xs for n in x} - {OFFSET})
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
    return ImplModel(names, mean.tolist(), scale.tolist(), coef.tolist(), bias, z.tolist(), resid.tolist(),
                     z.min(axis=0).tolist(), z.max(axis=0).tolist())


class CostModel:
    """`shape` (log seconds of a problem's fastest candidate, less its `offset` feature) plus,
    per impl, its log slowdown against that fastest one; `predict(key, impl, config, features)`
    -> seconds or None. Fitting the slowdown, not the time, leaves out what moves every
    candidate of a problem alike (load on the machine while it was measured, the size of the
    problem): only what ranks the candidates remains."""

    def __init__(self, impls: dict[str, ImplModel], shape: ImplModel | None, *, neighbours: int = 3,
                 rows: int = 0, seen: list[dict[str, float]] | None = None, similar: int = 8,
                 prior: float = 1.0):
        self.impls = impls
        self.shape = shape
        self.neighbours = neighbours
        self.rows = rows          # training rows used (for the record)
        # per training problem (in the order of shape.points): {impl + " " + config json: log slowdown}
        self.seen = seen or []
        self.similar = similar
        self.prior = prior

    @classmethod
    def fit(cls, rows: Iterable[Mapping[str, Any]], features: Features, *, ridge: float = 1.0,
            neighbours: int = 3, min_rows: int = 3, similar: int = 8, prior: float = 1.0) -> CostModel:
        by_key: dict[str, list] = {}
        for r in rows:
            t = seconds(r)
            if r.get("status") != "ok" or not t or t <= 0:
                continue
            feats = features(r["key"], r["impl"], _config(r["config"]))
            if feats is not None:
                by_key.setdefault(r["key"], []).append((r["impl"], config_json(_config(r["config"])), feats,
                                                        math.log(t)))
        data: dict[str, tuple[list, list]] = {}
        sx, sy, seen = [], [], []
        for key, items in by_key.items():
            best = min(y for *_, y in items)
            base = features(key, "", {}) or {}
            sx.append(base)
            sy.append(best - base.get(OFFSET, 0.0))
            seen.append({f"{impl} {cfg}": y - best for impl, cfg, _, y in items})
            for impl, _, feats, y in items:
                xs, ys = data.setdefault(impl, ([], []))
                xs.append(feats)
                ys.append(y - best)
        impls = {name: fit_impl(xs, ys, ridge) for name, (xs, ys) in data.items() if len(ys) >= min_rows}
        shape = fit_impl(sx, sy, ridge) if len(sy) >= min_rows else None
        return cls(impls, shape, neighbours=neighbours, rows=sum(len(v) for v in by_key.values()),
                   seen=seen, similar=similar, prior=prior)

    def slowdown(self, base: Mapping[str, float], label: str, model: float) -> float:
        """The impl model's log slowdown `model` blended with the measured log slowdowns of the
        candidate `label` on the `similar` training problems nearest to `base`."""
        if not (self.similar and self.seen and self.shape is not None):
            return model
        d2 = ((np.array(self.shape.points) - self.shape.vector(base)) ** 2).sum(axis=1)
        num, den = self.prior * model, self.prior
        for i in np.argsort(d2, kind="stable")[:self.similar]:
            if (v := self.seen[i].get(label)) is not None:
                w = 1.0 / (1.0 + float(d2[i]))
                num, den = num + w * v, den + w
        return num / den

    def predict(self, key: str, impl: str, config: dict, features: Features) -> float | None:
        """Seconds of one candidate (None: no model of its impl, or no features)."""
        out = self.predict_all(key, [(impl, config)], features, relative=False)
        return out.get((impl, config_json(config)))

    def predict_all(self, key: str, cands: Iterable[tuple[str, dict]], features: Features, *,
                    relative: bool = True) -> dict:
        """{(impl, config json): seconds} of the candidates (impl name, config) it can predict.
        With `relative`, the impl models' slowdowns are taken relative to the lowest among `cands`
        before the blend with the neighbours' measured ones (which are relative to each one's
        winner): how candidates are ranked."""
        base = features(key, "", {}) if self.shape is not None else None
        if base is None or self.shape is None:
            return {}
        slow = {}
        for impl, cfg in cands:
            m = self.impls.get(impl)
            feats = features(key, impl, dict(cfg)) if m is not None else None
            if m is not None and feats is not None:
                slow[(impl, config_json(cfg))] = m.log_seconds(feats, self.neighbours)
        if not slow:
            return {}
        fastest = self.shape.log_seconds(base, self.neighbours) + base.get(OFFSET, 0.0)
        low = min(slow.values()) if relative else 0.0
        return {(impl, cfg): math.exp(fastest + low + self.slowdown(base, f"{impl} {cfg}", v - low))
                for (impl, cfg), v in slow.items()}

    def to_json(self) -> str:
        return json.dumps({"neighbours": self.neighbours, "rows": self.rows,
                           "shape": vars(self.shape) if self.shape else None,
                           "impls": {n: vars(m) for n, m in sorted(self.impls.items())},
                           "seen": self.seen, "similar": self.similar, "prior": self.prior})

    @classmethod
    def from_json(cls, text: str) -> CostModel:
        d = json.loads(text)
        shape = ImplModel(**d["shape"]) if d["shape"] else None
        return cls({n: ImplModel(**m) for n, m in d["impls"].items()}, shape, neighbours=d["neighbours"],
                   rows=d["rows"], seen=d.get("seen"), similar=d.get("similar", 0), prior=d.get("prior", 1.0))


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
    """Changes when a measurement of (fp, op) is written to one of `dbs`, an impl is edited or
    the model's form changes (`MODEL_VERSION`)."""
    return json.dumps([MODEL_VERSION] + [db.stamp(fp, op) for db in dbs] + sorted(hashes.items()))


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
    return model.predict_all(problem.key(), [(impl.name, cfg) for impl, cfg in cands], tuner.features)


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
