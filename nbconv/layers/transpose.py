"""Conv1D/2D/3DTranspose (Keras 3 arguments) as plain convs through `ops.conv`.

The transposed conv equals a cross-correlation of the input with s - 1 zeros inserted between
neighbouring elements along each axis, padded per axis by (ke - 1 - lift, out + lift - (n - 1) * s - 1)
(ke the dilated kernel extent, lift the `same` crop), with the spatially flipped kernel and its
channel axes swapped. With a stride above 1 nothing is zero-inserted: output positions of phase
r (o % s == r) see only the taps j of that kernel with (r + j - lo) % s == 0, every s-th one, on
consecutive input positions, so each of the prod(s) phases is a stride-1 conv of the input itself
with a sub-kernel (the sub-pixel decomposition; Keras rejects strides > 1 with dilation > 1), and
its output is written to y[..., r::s, ...]. That skips the (s^rank - 1) of every s^rank
multiply-adds the zero-inserted conv spends on zeros and the zero-inserted copy of the input.
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import ops
from ..spec import effective_kernel
from . import device
from .args import positive_int, standardize_tuple
from .base import WeightView
from .conv_base import ConvLayer, rank_arguments


def transpose_output_length(length, k, s, d, padding, output_padding):
    if length is None:
        return None
    ke = effective_kernel(k, d)
    if padding == "valid":
        return (length - 1) * s + (max(ke, s) if output_padding is None else ke + output_padding)
    return length * s if output_padding is None else (length - 1) * s + ke % 2 + output_padding


def output_phases(n, k, s, lo, out):
    """Per output phase r of one axis (stride s, kernel k, undilated; lo the zero-inserted conv's
    low pad): (r, outputs m, first tap j0, taps kr, input [start, end), sub-conv pads (lo, hi))."""
    phases = []
    for r in range(s):
        m = max(0, -(-(out - r) // s))
        j0 = (lo - r) % s
        kr = max(0, -(-(k - j0) // s))
        c0 = (r + j0 - lo) // s                  # output m of the phase reads inputs m + c0 + t, t < kr
        start, end = max(0, c0), min(n, m - 1 + c0 + kr)
        phases.append((r, m, j0, kr, start, end, (max(0, -c0), max(0, m + c0 + kr - 1 - n))))
    return phases


class BaseConvTranspose(ConvLayer):
    kernel = WeightView("kernel")

    def __init__(self, rank, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         bias_initializer=bias_initializer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, bias_constraint=bias_constraint, **kwargs)
        self.output_padding = None if output_padding is None else standardize_tuple(
            output_padding, rank, "output_padding", allow_zero=True)
        self.filters = positive_int(filters, "filters")
        self._weight_args("kernel", kernel_initializer, kernel_regularizer, kernel_constraint)
        for i, (op, s) in enumerate(zip(self.output_padding or (), self.strides, strict=False)):
            if op >= s:
                raise ValueError(
                    "`output_padding` must be strictly less than `strides` for all dimensions. "
                    f"At dimension {i}, `output_padding` is {op} but `strides` is {s}. "
                    f"Received: output_padding={self.output_padding}, strides={self.strides}")
        self._check_strides_with_dilation()

    def _output_spatial(self, input_shape):
        output_padding = self.output_padding or (None,) * self.rank
        axes = zip(self._split(input_shape)[0], self.kernel_size, self.strides, self.dilation_rate,
                   output_padding, strict=True)
        return tuple(transpose_output_length(n, k, s, d, self.padding, op) for n, k, s, d, op in axes)

    def _kernel_weights(self, channels):
        return [("kernel", (*self.kernel_size, self.filters, channels), self.kernel_initializer)]

    def _prepare_kernels(self):
        # (*k, F, C) -> flipped (*k, C, F): the cross-correlation that equals the transposed conv
        kernel = np.flip(self._weight("kernel"), tuple(range(self.rank)))
        self._kernel = np.ascontiguousarray(np.swapaxes(kernel, -1, -2))

    def _make_problem(self, shape):
        """[(output indices, input index, Problem, kernel, bias)]: one conv per group of phases that
        read the same input window with the same sub-kernel shape and pads, its output channels
        the phases' side by side (Problem None: a phase no tap reaches holds the bias); with
        stride 1 the one conv [(None, None, Problem, kernel, bias)]."""
        spatial, c = self._split(shape)
        out = self._output_spatial(shape)
        pads = []
        axes = zip(spatial, self.kernel_size, self.strides, self.dilation_rate, out, strict=True)
        for n, k, s, d, o in axes:
            ke = effective_kernel(k, d)
            lift = 0 if self.padding == "valid" else max((n - 1) * s + ke - o, 0) // 2
            pads.append((ke - 1 - lift, o + lift - (n - 1) * s - 1))
        if all(s == 1 for s in self.strides):
            p = self._conv_problem(shape, strides=None, padding=tuple(pads), out_channels=self.filters)
            return [(None, None, p, self._kernel, self._bias)]
        axes = [output_phases(n, k, s, lo, o) for n, k, s, (lo, _), o in zip(
            spatial, self.kernel_size, self.strides, pads, out, strict=True)]
        groups: dict = {}           # phases reading the same input window with the same geometry
        plan = []
        for phase in itertools.product(*axes):
            if any(m == 0 for _, m, *_ in phase):
                continue
            out_index = self._index(tuple(slice(r, None, s) for (r, *_), s in zip(phase, self.strides,
                                                                                  strict=True)))
            if any(kr == 0 or end <= start for _, _, _, kr, start, end, _ in phase):
                plan.append(([out_index], None, None, None, None))
                continue
            window = tuple((start, end) for *_, start, end, _ in phase)
            geometry = (window, tuple(kr for _, _, _, kr, *_ in phase), tuple(pad for *_, pad in phase))
            taps = tuple(slice(j0, None, s) for (_, _, j0, *_), s in zip(phase, self.strides, strict=True))
            groups.setdefault(geometry, []).append((out_index, self._kernel[taps]))
        # One conv per group, its sub-kernels side by side: a k <= s layer (every phase a 1x1
        # conv of the whole input) is then one GEMM with s^rank times the columns, not s^rank GEMMs.
        for (window, kr, sub_pads), members in groups.items():
            sub = self._join(shape[0], tuple(end - start for start, end in window), c)
            p = self._conv_problem(sub, kernel=kr, strides=None, dilation=None, padding=sub_pads,
                                   out_channels=self.filters * len(members))
            kernel = np.ascontiguousarray(np.concatenate([k for _, k in members], axis=-1))
            bias = np.ascontiguousarray(np.tile(self._bias, len(members)))
            in_index = self._index(tuple(slice(start, end) for start, end in window))
            plan.append(([o for o, _ in members], in_index, p, kernel, bias))
        return plan

    def _index(self, spatial):
        lead = (slice(None),) if self.data_format == "channels_last" else (slice(None), slice(None))
        return (*lead, *spatial)

    def call(self, x):
        plan = self._problem(x.shape)
        if plan[0][0] is None:
            _, _, p, kernel, bias = plan[0]
            return self.activation(ops.conv(x, kernel, self._bias, p))
        y = np.empty(self.compute_output_shape(x.shape), self._np_dtype)
        last = self.data_format == "channels_last"
        f = self.filters
        for out_indices, in_index, p, kernel, bias in plan:
            if p is None:
                y[out_indices[0]] = self._bias if last else self._bias.reshape(-1, *(1,) * self.rank)
                continue
            ys = ops.conv(np.ascontiguousarray(x[in_index]), kernel, bias, p)
            for i, out_index in enumerate(out_indices):
                y[out_index] = ys[..., i * f:(i + 1) * f] if last else ys[:, i * f:(i + 1) * f]
        return self.activation(y)

    def _on_device(self, x, shape):
        if any(s > 1 for s in self.strides):
            raise TypeError(f"Input 0 of layer '{self.name}': a transposed conv with strides "
                            f"{self.strides} > 1 has no CUDA path (its zero insertion runs on the host); "
                            "pass a host (numpy) array")
        return ops.conv(x, self._kernel, self._bias, device.problem(self._problem(shape)[0]))

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "output_padding": self.output_padding,
                       **self._weight_config("kernel")})
        return config


class Conv1DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=1, **rank_arguments(locals()))


class Conv2DTranspose(BaseConvTranspose):
    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=2, **rank_arguments(locals()))


class Conv3DTranspose(BaseConvTranspose):
    """Keras 3 puts `data_format` before `output_padding` here."""

    def __init__(self, filters, kernel_size, strides=(1, 1, 1), padding="valid", data_format=None,
                 output_padding=None, dilation_rate=(1, 1, 1), activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(rank=3, **rank_arguments(locals()))
