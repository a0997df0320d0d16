"""LocallyConnected1D/2D (tf-keras semantics), through `nbconv.ops.local`.

Weights are stored in the Keras layout of the chosen `implementation` (1, 2 or 3) so they move
between tf-keras and nbconv unchanged; the kernel wants the canonical (P, *k, C_in, F) kernel and
(P, F) bias, recomputed whenever the weights change.
"""
from __future__ import annotations

import math

import numpy as np

from .. import knobs, ops
from ..spec import make_problem
from . import activations, device, initializers
from .args import check_bool, positive_int, standardize_data_format, standardize_padding, standardize_tuple
from .base import Layer, WeightView, keep_object, serialize_object

# tf-keras's generic layer kwargs (anything else is a TypeError there, e.g. dilation_rate)
_LAYER_KWARGS = {"name", "dtype", "trainable", "input_shape", "input_dim", "batch_input_shape",
                 "batch_size", "weights", "autocast", "dynamic"}


def lc_output_length(length, k, s, padding):
    return (length - k) // s + 1 if padding == "valid" else (length - 1) // s + 1


def window_table(in_sp, out_sp, kernel, strides, lo):
    """(P, K) flat input position read by (output position p, kernel offset j), and whether in bounds.

    p and j are row-major; the window of p along an axis starts at p*s - lo (lo = k//2 for `same`).
    """
    grids = np.meshgrid(*[np.arange(o) for o in out_sp], indexing="ij")
    offs = np.meshgrid(*[np.arange(k) for k in kernel], indexing="ij")
    flat_in = np.zeros((math.prod(out_sp), math.prod(kernel)), np.int64)
    ok = np.ones_like(flat_in, dtype=bool)
    for ax, (g, off) in enumerate(zip(grids, offs, strict=True)):
        pos = g.reshape(-1, 1) * strides[ax] - lo[ax] + off.reshape(1, -1)
        ok &= (pos >= 0) & (pos < in_sp[ax])
        flat_in = flat_in * in_sp[ax] + np.clip(pos, 0, in_sp[ax] - 1)
    return flat_in, ok


class BaseLocallyConnected(Layer):
    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, implementation=1,
                 **kwargs):
        for key in kwargs:
            if key not in _LAYER_KWARGS:
                raise TypeError(("Keyword argument not understood:", key))
        if "batch_input_shape" in kwargs:
            kwargs.setdefault("input_shape", tuple(kwargs.pop("batch_input_shape"))[1:])
        kwargs.pop("batch_size", None)
        kwargs.pop("dynamic", None)
        self._initial_weights = kwargs.pop("weights", None)
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.rank = rank
        self.filters = positive_int(filters, "filters")
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.implementation = implementation
        self.kernel_initializer = initializers.get(kernel_initializer or "glorot_uniform")
        self.bias_initializer = initializers.get(bias_initializer or "zeros")
        self.kernel_regularizer = keep_object(kernel_regularizer, "regularizer")
        self.bias_regularizer = keep_object(bias_regularizer, "regularizer")
        self.kernel_constraint = keep_object(kernel_constraint, "constraint")
        self.bias_constraint = keep_object(bias_constraint, "constraint")
        if self.padding == "same" and implementation == 1:
            raise ValueError(f"Invalid border mode for {type(self).__name__} (only \"valid\" is supported "
                             f"if implementation is 1): {self.padding}")
        self._expected_ndim = rank + 2
        self._canonical = None

    # -- shapes -----------------------------------------------------------------------------
    def _split(self, shape):
        if self.data_format == "channels_last":
            return tuple(shape[1:-1]), shape[-1]
        return tuple(shape[2:]), shape[1]

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        self._check_shape(input_shape)
        in_sp, _ = self._split(input_shape)
        if any(n is None for n in in_sp):
            raise ValueError(f"The spatial dimensions of the inputs to {type(self).__name__} should be "
                             f"fully-defined, but layer {self.name} received the inputs shape "
                             f"{input_shape}")
        out = tuple(lc_output_length(n, k, s, self.padding)
                    for n, k, s in zip(in_sp, self.kernel_size, self.strides, strict=True))
        if any(o <= 0 for o in out):
            raise ValueError(f"One of the dimensions in the output is <= 0 due to downsampling in "
                             f"{self.name}. Consider increasing the input size. Received input shape "
                             f"{input_shape} which would produce output shape with a zero or negative "
                             "value in a dimension.")
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    # -- weights ------------------------------------------------------------------------------
    def _kernel_shape(self):
        k, c, f, p_sp = self.kernel_size, self._channels, self.filters, self._out_sp
        if self.implementation == 1:
            return (math.prod(p_sp), math.prod(k) * c, f)
        if self.implementation == 2:
            if self.data_format == "channels_last":
                return (*self._in_sp, c, *p_sp, f)
            return (c, *self._in_sp, f, *p_sp)
        return (self._nnz,)

    def _build(self, input_shape):
        if self.implementation not in (1, 2, 3):
            raise ValueError(f"Unrecognized implementation mode: {self.implementation}.")
        in_sp, channels = self._split(input_shape)
        if channels is None:
            raise ValueError(f"The channel dimension of the inputs to {type(self).__name__} should be "
                             f"defined. Received input shape {input_shape}")
        self._in_sp, self._channels = in_sp, channels
        out = self.compute_output_shape(input_shape)
        self._out_sp, _ = self._split(out)
        lo = [k // 2 if self.padding == "same" else 0 for k in self.kernel_size]
        self._flat_in, self._in_bounds = window_table(in_sp, self._out_sp, self.kernel_size, self.strides, lo)
        self._nnz = int(self._in_bounds.sum()) * channels * self.filters
        # every non-batch axis is fixed: the weights depend on the spatial shape
        self._spec_axes = {i: v for i, v in enumerate(input_shape) if i > 0}
        self._weights = []
        self._add_weight("kernel", self._kernel_shape(), self.kernel_initializer)
        if self.use_bias:
            self._add_weight("bias", (*self._out_sp, self.filters), self.bias_initializer)
        self._weights_changed()
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)

    def _weights_changed(self):
        self._canonical = (self._canonical_kernel(self._weight("kernel")), self._canonical_bias())
        self._problems.clear()

    def _canonical_bias(self):
        n_pos, f = math.prod(self._out_sp), self.filters
        bias = self._weight("bias")
        if bias is None:
            return np.zeros((n_pos, f), self._np_dtype)
        if self.data_format == "channels_last":
            return np.ascontiguousarray(bias.reshape(n_pos, f))
        # tf-keras bias_add *reshapes* the (*P_sp, F) bias to (F, *P_sp) for channels_first
        return np.ascontiguousarray(bias.reshape(f, n_pos).T)

    def _canonical_kernel(self, kernel):
        """(P, *k, C, F) from the implementation's layout; out-of-bounds window cells get zero."""
        r, k, c, f = self.rank, self.kernel_size, self._channels, self.filters
        n_pos, n_k, n_in = math.prod(self._out_sp), math.prod(k), math.prod(self._in_sp)
        cl = self.data_format == "channels_last"
        if self.implementation == 1:
            # the patch is flattened in the input's own layout: (k..., C) or (C, k...)
            if cl:
                w = kernel.reshape(n_pos, *k, c, f)
            else:
                w = np.moveaxis(kernel.reshape(n_pos, c, *k, f), 1, r + 1)
            return np.ascontiguousarray(w)
        if self.implementation == 2:
            dense = kernel.reshape(n_in, c, n_pos, f) if cl else \
                kernel.reshape(c, n_in, f, n_pos).transpose(1, 0, 3, 2)
            w = dense[self._flat_in, :, np.arange(n_pos)[:, None], :]          # (P, K, C, F)
        else:
            p_idx, j_idx = np.nonzero(self._in_bounds)
            pos = self._flat_in[p_idx, j_idx]
            # every (p, j, c, f) connection, then its rank in tf-keras's sorted (out_idx, in_idx) order
            pp, cc, ff = (a.ravel() for a in np.meshgrid(np.arange(len(p_idx)), np.arange(c), np.arange(f),
                                                         indexing="ij"))
            if cl:
                out_idx, in_idx = p_idx[pp] * f + ff, pos[pp] * c + cc
            else:
                out_idx, in_idx = ff * n_pos + p_idx[pp], cc * n_in + pos[pp]
            order = np.lexsort((in_idx, out_idx))
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            w = np.zeros((n_pos, n_k, c, f), self._np_dtype)
            w[p_idx[pp], j_idx[pp], cc, ff] = kernel[rank]
        w = np.where(self._in_bounds[:, :, None, None], w, 0).astype(self._np_dtype, copy=False)
        return np.ascontiguousarray(w.reshape(n_pos, *k, c, f))

    kernel = WeightView("kernel")
    bias = WeightView("bias")

    # -- forward ------------------------------------------------------------------------------
    def _problem(self, shape):
        p = self._problems.get(shape)
        if p is None:
            p = make_problem("local", shape, rank=self.rank, kernel=self.kernel_size, strides=self.strides,
                             padding=self.padding, out_channels=self.filters, layout=self.data_format,
                             dtype=self.dtype, device=knobs.device())
            self._problems[shape] = p
        return p

    def call(self, x):
        w, b = self._canonical
        return self.activation(ops.local(x, w, b, self._problem(x.shape)))

    def _on_device(self, x, shape):
        w, b = self._canonical
        return ops.local(x, w, b, device.problem(self._problem(shape)))

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "data_format": self.data_format,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": serialize_object(self.kernel_regularizer),
            "bias_regularizer": serialize_object(self.bias_regularizer),
            "activity_regularizer": serialize_object(self.activity_regularizer),
            "kernel_constraint": serialize_object(self.kernel_constraint),
            "bias_constraint": serialize_object(self.bias_constraint),
            "implementation": self.implementation,
        })
        return config


class LocallyConnected1D(BaseLocallyConnected):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, implementation=1, **kwargs):
        super().__init__(1, filters, kernel_size, strides, padding, data_format, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, implementation, **kwargs)


class LocallyConnected2D(BaseLocallyConnected):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, implementation=1,
                 **kwargs):
        super().__init__(2, filters, kernel_size, strides, padding, data_format, activation, use_bias,
                         kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
                         activity_regularizer, kernel_constraint, bias_constraint, implementation, **kwargs)
