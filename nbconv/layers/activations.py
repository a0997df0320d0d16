"""Activations by Keras name, applied in NumPy after the kernel (never inside kernels)."""
from __future__ import annotations

import math

import numpy as np


def linear(x):
    return x


def relu(x):
    return np.maximum(x, 0, dtype=x.dtype)


def relu6(x):
    return np.minimum(np.maximum(x, 0), 6).astype(x.dtype, copy=False)


def leaky_relu(x, negative_slope=0.2):
    return np.where(x >= 0, x, x * x.dtype.type(negative_slope))


def sigmoid(x):
    # e = exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below (no boolean indexing)
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)
    r = 1 / (1 + e)
    np.multiply(e, r, out=e)
    return np.where(x >= 0, r, e).astype(x.dtype, copy=False)


def hard_sigmoid(x):
    return (relu6(x + 3) / 6).astype(x.dtype, copy=False)


def tanh(x):
    return np.tanh(x)


def softplus(x):
    return np.logaddexp(x, 0).astype(x.dtype, copy=False)


def softsign(x):
    return x / (1 + np.abs(x))


def silu(x):
    return x * sigmoid(x)


def hard_silu(x):
    return x * hard_sigmoid(x)


def elu(x, alpha=1.0):
    return np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(np.minimum(x, 0)))


def selu(x):
    alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
    return (scale * elu(x, alpha)).astype(x.dtype, copy=False)


def gelu(x, approximate=False):
    if approximate:
        c = math.sqrt(2 / math.pi)
        return (0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x ** 3)))).astype(x.dtype, copy=False)
    from scipy.special import erf
    return (0.5 * x * (1 + erf(x / math.sqrt(2)))).astype(x.dtype, copy=False)


def exponential(x):
    return np.exp(x)


def mish(x):
    return x * np.tanh(softplus(x))


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    s = x - np.max(x, axis=axis, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


ALL = {f.__name__: f for f in (
    linear, relu, relu6, leaky_relu, sigmoid, hard_sigmoid, tanh, softplus, softsign, silu,
    hard_silu, elu, selu, gelu, exponential, mish, softmax, log_softmax)}
ALL.update(swish=silu, hard_swish=hard_silu)


def get(identifier):
    """None -> linear; a Keras name; or any callable taking and returning a NumPy array."""
    if identifier is None:
        return linear
    if isinstance(identifier, str) and identifier in ALL:
        return ALL[identifier]
    if isinstance(identifier, dict) and identifier.get("config") in ALL:  # Keras serialisation
        return ALL[identifier["config"]]
    if callable(identifier) and not isinstance(identifier, str):
        return identifier
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


def serialize(fn):
    for name, f in ALL.items():
        if f is fn:
            return name
    return fn


def hard_sigmoid_keras2(x):
    """Keras 1/2's hard_sigmoid (slope 0.2; Keras 3's is x/6 + 0.5): legacy names and files use it."""
    return np.clip(x * x.dtype.type(0.2) + x.dtype.type(0.5), 0, 1).astype(x.dtype, copy=False)


ALL["hard_sigmoid_keras2"] = hard_sigmoid_keras2
