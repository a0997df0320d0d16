"""Keras-1 constructors (`Convolution2D(64, 9, 9, border_mode='same')`) returning today's layers.

Arguments are converted as Keras 2.0-2.3 did, with a LegacyWarning that shows the modern call; what
nbconv does not support is refused by the modern layer's own checks (never dropped)."""

from __future__ import annotations

import warnings

from .. import layers as L
from ..layers.args import standardize_data_format, standardize_tuple
from . import interfaces

# Keras 1/2 initializer names that Keras 3 no longer has (same distributions and defaults).
INIT_ALIASES = {"zero": "zeros", "one": "ones", "uniform": "random_uniform", "normal": "random_normal"}
_INIT_KEYS = (
    "kernel_initializer",
    "bias_initializer",
    "depthwise_initializer",
    "pointwise_initializer",
    "beta_initializer",
    "gamma_initializer",
)


class LegacyWarning(UserWarning):
    """A Keras-1 name or argument was converted; the message shows the modern call."""


def keras2_semantics(kwargs):
    """In place: Keras 2's initializer aliases and its hard_sigmoid (slope 0.2, not Keras 3's 1/6)."""
    for key in _INIT_KEYS:
        if isinstance(kwargs.get(key), str) and kwargs[key] in INIT_ALIASES:
            kwargs[key] = INIT_ALIASES[kwargs[key]]
    if kwargs.get("activation") == "hard_sigmoid":
        kwargs["activation"] = "hard_sigmoid_keras2"


def _transpose_axis(out, ke, s, padding):
    """Keras 3's `output_padding` for one axis `out` long: None (the default fits), an int, or -1."""
    n = -(-out // s) if padding == "same" else -(-(out - ke + 1) // s)  # the input TF's conv_transpose needs
    if n < 1:
        return -1
    if (n * s if padding == "same" else (n - 1) * s + max(ke, s)) == out:
        return None
    op = out - (n - 1) * s - (ke % 2 if padding == "same" else ke)
    return op if 0 <= op < s else -1


def _default_as_padding(ke, s, padding):
    """The `output_padding` equal to None on one axis, or -1 (same with an even extent has none)."""
    op = max(ke, s) - ke if padding == "valid" else s - ke % 2
    return op if op < s else -1


def output_padding_for(
    output_shape, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1
):
    """Keras 1's `Deconvolution2D(output_shape=...)` as Keras 3's `output_padding`.

    Keras 2 dropped `output_shape`; nbconv derives the `output_padding` that gives exactly that size
    (for the input size TensorFlow's conv_transpose required), or refuses it."""
    shape = tuple(output_shape) if isinstance(output_shape, (tuple, list)) else None
    fmt = standardize_data_format(data_format)
    if shape is None or len(shape) != 4:
        raise ValueError(
            f"`output_shape` must be (batch, rows, cols, channels) for 'tf' or (batch, channels, "
            f"rows, cols) for 'th' ordering. Received: output_shape={output_shape}"
        )
    channels, spatial = (shape[3], shape[1:3]) if fmt == "channels_last" else (shape[1], shape[2:])
    if channels is not None and channels != filters:
        raise ValueError(
            f"`output_shape` has {channels} channels but the layer has nb_filter={filters}. "
            f"Received: output_shape={output_shape}"
        )
    if any(isinstance(o, bool) or not isinstance(o, int) or o < 1 for o in spatial):
        raise ValueError(
            f"`output_shape` needs positive spatial sizes. Received: output_shape={output_shape}"
        )
    k, s, d = (
        standardize_tuple(v, 2, n)
        for v, n in ((kernel_size, "kernel_size"), (strides, "strides"), (dilation_rate, "dilation_rate"))
    )
    pad = str(padding).lower()
    extents = [(kk - 1) * dd + 1 for kk, dd in zip(k, d, strict=True)]
    ops = [_transpose_axis(o, ke, ss, pad) for o, ke, ss in zip(spatial, extents, s, strict=True)]
    if all(op is None for op in ops):
        return None
    ops = [
        _default_as_padding(ke, ss, pad) if op is None else op
        for op, ke, ss in zip(ops, extents, s, strict=True)
    ]
    if -1 in ops:
        raise ValueError(
            f"`output_shape={output_shape}` cannot be produced by a transposed convolution with "
            f"kernel_size={k}, strides={s}, padding='{pad}'."
        )
    return tuple(ops)


def _make(called, kind, cls, args, kwargs):
    args, kwargs, converted = interfaces.convert(kind, args, kwargs)
    if cls is L.Activation and args and args[0] == "hard_sigmoid":
        args[0] = "hard_sigmoid_keras2"
    keras2_semantics(kwargs)
    if "atrous_rate" in kwargs:
        kwargs["dilation_rate"] = kwargs.pop("atrous_rate")
        converted.append(("dilation_rate", "atrous_rate"))
    output_shape = kwargs.pop("_output_shape", None)
    if output_shape is not None:
        filters = args[0] if args else kwargs.get("filters")
        size = args[1] if len(args) > 1 else kwargs.get("kernel_size")
        kwargs["output_padding"] = output_padding_for(
            output_shape,
            filters,
            size,
            kwargs.get("strides", 1),
            kwargs.get("padding", "valid"),
            kwargs.get("data_format"),
            kwargs.get("dilation_rate", 1),
        )
    if cls.__name__.startswith("AveragePooling") and not args and "pool_size" not in kwargs:
        kwargs["pool_size"] = 2  # Keras 2's default; Keras 3 has none
    layer = cls(*args, **kwargs)  # first: a refused call does not warn too
    if converted or called.startswith(("Deconv", "Atrous")):  # names Keras 3 does not have
        warnings.warn(
            LegacyWarning(
                f"Update your `{called}` call to the Keras 2 API: "
                f"{interfaces.signature(cls.__name__, args, kwargs)}"
            ),
            stacklevel=3,
        )
    return layer


def legacy(called, cls, kind=None):
    """A constructor named `called` for `cls`, with Keras 2's legacy interface of `kind`."""

    def make(*args, **kwargs):
        return _make(called, kind or cls.__name__, cls, args, kwargs)

    make.__name__ = make.__qualname__ = called
    make.__doc__ = (
        f"Keras 1/2 `{called}`: a `nbconv.layers.{cls.__name__}`, arguments converted as Keras 2 did."
    )
    return make


def _atrous(called, cls):
    def make(*args, atrous_rate=1, **kwargs):
        return _make(called, cls.__name__, cls, args, dict(kwargs, atrous_rate=atrous_rate))

    make.__name__ = make.__qualname__ = called
    make.__doc__ = f"Keras 1/2 `{called}(..., atrous_rate=r)`: `{cls.__name__}(..., dilation_rate=r)`."
    return make


AtrousConvolution1D = _atrous("AtrousConvolution1D", L.Conv1D)
AtrousConvolution2D = _atrous("AtrousConvolution2D", L.Conv2D)
