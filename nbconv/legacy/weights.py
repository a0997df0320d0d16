"""Weights of Keras 1/2 files in today's layouts, as Keras 2's `preprocess_weights_for_loading` did."""

from __future__ import annotations

import numpy as np

_CONV = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose")


def convert_kernel(kernel):
    """Flip the spatial axes (all but the last two): Theano kernels <-> TensorFlow's (Keras 2's)."""
    kernel = np.asarray(kernel)
    if not 3 <= kernel.ndim <= 5:
        raise ValueError(f"Invalid kernel shape: {kernel.shape}")
    return np.copy(kernel[(slice(None, None, -1),) * (kernel.ndim - 2)])


def _keras1(layer, weights):
    name, w = type(layer).__name__, weights[0]
    fmt = getattr(layer, "data_format", None)
    if name == "Conv1D" and w.ndim == 4:
        k, f = layer.kernel_size[0], layer.filters
        if w.shape[:2] != (k, 1) or w.shape[3] != f:  # Keras 1.0: (filters, input_dim, length, 1)
            if not (w.shape[0] == f and w.shape[2:] == (k, 1)):
                raise ValueError(f"Conv1D kernel of shape {w.shape} is neither Keras 1 layout.")
            w = np.transpose(w, (2, 3, 1, 0))
        w = w[:, 0, :, :]
    elif name == "Conv2D" and fmt == "channels_first":
        w = np.transpose(w, (2, 3, 1, 0))  # (filters, stack, rows, cols) -> (rows, cols, stack, filters)
    elif name == "Conv2DTranspose":
        w = np.transpose(w, (0, 1, 3, 2) if fmt == "channels_last" else (2, 3, 0, 1))
    elif name == "Conv3D" and fmt == "channels_first":
        w = np.transpose(w, (2, 3, 4, 1, 0))
    return [w, *weights[1:]]


def preprocess(layer, weights, keras_version, backend):
    """Keras 2's conversion: Keras 1 layouts (`keras_version == '1'`), then Theano's flipped kernels.

    Works on shapes alone too (a zero-strided array of a dataset's shape), so shapes are checked
    before anything is read."""
    if not weights:
        return weights
    if keras_version == "1":
        weights = _keras1(layer, weights)
    if type(layer).__name__ in _CONV:
        if backend == "theano":
            weights = [convert_kernel(weights[0]), *weights[1:]]
        expected = tuple(layer.weights[0].shape)
        if weights[0].shape != expected and weights[0].ndim == 4:
            weights = [np.transpose(weights[0], (3, 2, 0, 1)), *weights[1:]]  # Keras 2.0 beta's layout
    return weights


def shape_only(shape):
    """An array of `shape` that occupies no memory: preprocess() on it gives the loaded shape."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * len(shape), writeable=False)
