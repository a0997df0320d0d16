"""Every applicable (impl, config) of a Problem, checked against the float64 reference and timed in
turns by the tuner's loop: the report's sweeps and `nbconv bench --impls` measure through here.
Verification is the tuner's own (`nbconv.ops.tuner().verifier`: error measure, tolerance, and
the same size limit above which it is skipped)."""
from __future__ import annotations

from nbconv.tuner import registry

import nbconv.ops
from nbconv import reference

from . import timing


def measure_candidates(p, args, s, *, configs: str = "all", timer=None, skip=None) -> list:
    """[(Impl, config, Measurement)] for p's applicable candidates (`configs="first"`: each impl's
    first config only; `skip(impl) -> bool` leaves some out), timed in turns. A candidate whose
    first call raises or whose output is wrong keeps status raised / wrong and no samples."""
    t = nbconv.ops.tuner()
    ref = []

    def expected():
        if not ref:
            ref.append(reference.run(p.op, p, *args))
        return ref[0]

    chosen = []
    for impl in registry.impls(p.op):
        if not impl.check(p)[0] or (skip is not None and skip(impl)):
            continue
        cfgs = impl.configs_for(p)
        chosen += [(impl, cfg) for cfg in (cfgs[:1] if configs == "first" else cfgs)]

    def check(i):
        return t.verifier.check(chosen[i][0], p, expected, s)     # the tuner's own verification

    makers = {i: (lambda impl=impl, cfg=cfg: impl.bind(args, p, cfg)) for i, (impl, cfg) in enumerate(chosen)}
    timers = {i: timer or impl.clock() for i, (impl, _) in enumerate(chosen)}
    ms = timing.measure_many(makers, s, check=check, timers=timers)
    out = []
    for i, (impl, cfg) in enumerate(chosen):
        m = ms[i]
        m.impl, m.config, m.source_hash = impl.name, cfg, impl.source_hash
        out.append((impl, cfg, m))
    return out
