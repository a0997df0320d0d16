"""Weight initializers by Keras name (same distributions as Keras 3; values come from NumPy's RNG).

`get(identifier)` takes a name ('glorot_uniform'), a Keras config dict
({'class_name': 'GlorotUniform', 'config': {'seed': 1}}), an Initializer or a callable (shape, dtype).
"""
from __future__ import annotations

import inspect
import math
import re

import numpy as np

# Truncation at 2 stddev shrinks the spread; Keras divides by this to restore it.
_TRUNC_STD = 0.87962566103423978


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
        self.seed = seed
        # A seeded initializer gives the same values on every call, as in Keras 3.
        self._rng = None if seed is not None else np.random.default_rng()

    def _gen(self):
        return np.random.default_rng(self.seed) if self.seed is not None else self._rng

    def __call__(self, shape, dtype="float32"):
        return np.asarray(self._draw(tuple(int(s) for s in shape)), dtype=dtype)

    def _draw(self, shape):
        raise NotImplementedError

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        # Keras 3 writes extra keys (input_axes, output_axes) that do not change the distribution.
        params = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in config.items() if k in params})


class Zeros(Initializer):
    def __init__(self):
        super().__init__()

    def _draw(self, shape):
        return np.zeros(shape)

    def get_config(self):
        return {}


class Ones(Zeros):
    def _draw(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        self.value = value

    def _draw(self, shape):
        return np.full(shape, self.value, dtype=np.float64)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def _draw(self, shape):
        return self._gen().normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated(gen, shape, mean, stddev):
    """Normal values redrawn until they lie within two stddev of the mean."""
    z = gen.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = gen.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return mean + stddev * z


class TruncatedNormal(RandomNormal):
    def _draw(self, shape):
        return _truncated(self._gen(), shape, self.mean, self.stddev)


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def _draw(self, shape):
        return self._gen().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in {"fan_in", "fan_out", "fan_avg"}:
            raise ValueError("Invalid `mode` argument: expected one of {'fan_in', 'fan_out', 'fan_avg'}. "
                             f"Received: mode={mode}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in {"uniform", "truncated_normal", "untruncated_normal"}:
            raise ValueError("Invalid `distribution` argument: expected one of {'uniform', "
                             "'truncated_normal', 'untruncated_normal'}. "
                             f"Received: distribution={distribution}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def _draw(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        scale = self.scale / max(1.0, fan)
        gen = self._gen()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return gen.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return gen.normal(0.0, math.sqrt(scale), shape)
        return _truncated(gen, shape, 0.0, math.sqrt(scale) / _TRUNC_STD)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


def _scaling(name, scale, mode, distribution):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config})


GlorotUniform = _scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")

CLASSES = {c.__name__: c for c in (
    Zeros, Ones, Constant, RandomNormal, TruncatedNormal, RandomUniform, VarianceScaling,
    GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal)}


def _snake(name):
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


NAMES = {_snake(n): c for n, c in CLASSES.items()}
NAMES.update(zeros=Zeros, ones=Ones, constant=Constant)


def get(identifier):
    if identifier is None:
        return None
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = NAMES.get(identifier) or CLASSES.get(identifier)
        if cls is not None:
            return cls()
    elif isinstance(identifier, dict) and "class_name" in identifier:
        cls = CLASSES.get(identifier["class_name"]) or NAMES.get(identifier["class_name"])
        if cls is not None:
            return cls.from_config(dict(identifier.get("config") or {}))
    elif callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier}")


def serialize(init):
    if isinstance(init, Initializer):
        return {"module": "keras.initializers", "class_name": type(init).__name__,
                "config": init.get_config(), "registered_name": None}
    return init
