"""Keras 3 argument normalisation, with Keras's exception types and message texts."""
from __future__ import annotations

import numbers

import numpy as np

DTYPES = ("float32", "float64")


def standardize_tuple(value, n, name, allow_zero=False):
    """An int, or a tuple/list of exactly n ints, as a tuple of n Python ints.

    As Keras 3, a bare scalar must be a Python int (np.int64(3) and 3.0 are rejected);
    unlike Keras, tuple elements must also be integral, so (3.0, 3.0) fails here instead of later.
    """
    msg = f"The `{name}` argument must be a tuple of {n} integers. Received {name}={value}"
    if isinstance(value, int) and not isinstance(value, bool):
        values = (value,) * n
    else:
        if isinstance(value, (str, bytes, bool)) or not hasattr(value, "__iter__"):
            raise ValueError(msg)
        values = tuple(value)
        if len(values) != n:
            raise ValueError(msg)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ValueError(f"{msg}including element {v} of type {type(v)}")
        values = tuple(int(v) for v in values)
    bad = {v for v in values if (v < 0 if allow_zero else v <= 0)}
    if bad:
        raise ValueError(f"{msg}, including values {bad} that do not satisfy "
                         f"`value {'>= 0' if allow_zero else '> 0'}`")
    return values


def standardize_padding(value, allow_causal=False):
    allowed = {"valid", "same", "causal"} if allow_causal else {"valid", "same"}
    padding = value.lower() if isinstance(value, str) else value
    if not isinstance(padding, str) or padding not in allowed:  # explicit pad lists are not supported
        raise ValueError(f"The `padding` argument must be a list/tuple or one of {allowed}. "
                         f"Received: {padding}")
    return padding


def standardize_data_format(value):
    if value is None:
        return "channels_last"  # keras.config.image_data_format() default
    fmt = str(value).lower()
    if fmt not in {"channels_first", "channels_last"}:
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={value}")
    return fmt


def positive_int(value, name):
    """`filters` and the like: a Python int > 0 (Keras 3 rejects 4.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"Invalid value for argument `{name}`. Expected a strictly positive value. "
                         f"Received {name}={value}.")
    return int(value)


def standardize_dtype(value):
    """The layer dtype: 'float32' (default) or 'float64'; a Keras DTypePolicy config is accepted."""
    if value is None:
        return "float32"
    if isinstance(value, dict):  # Keras 3 get_config() writes a DTypePolicy dict
        value = value.get("config", {}).get("name", value)
    name = getattr(value, "name", value)  # a DTypePolicy-like object
    try:
        name = np.dtype(name).name
    except TypeError:
        raise ValueError(f"Invalid dtype: {value!r}. nbconv layers compute in one of {DTYPES}.") from None
    if name not in DTYPES:
        raise ValueError(f"Unsupported dtype for argument `dtype`: nbconv layers compute in one of "
                         f"{DTYPES}. Received: dtype={value}")
    return name


def predict_batch_size(batch_size):
    """`predict`'s batch size: 32 when None (as Keras), else a positive int."""
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"Argument `batch_size` must be a positive int. Received: batch_size={batch_size}")
    return batch_size


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Argument `{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def unknown_kwargs(cls_name, kwargs):
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to {cls_name}: {kwargs}")
