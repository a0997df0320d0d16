"""The cases of `nbconv bench --families`: per layer family, the nbconv layer a Keras user builds and
the call a PyTorch CPU user would write for the same layer, on the same weights.

A case is data: its family, its name, the nbconv layer for a data format, and its channels_last
input shape per sample. The torch side of each case is
`nbconv.reports.torch_anchor.layer_call` (the one module that builds torch calls).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field

from nbconv import layers
from nbconv.shapes import reference_path


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    layer: str                 # nbconv.layers class name
    args: tuple                # positional arguments of the layer
    shape: tuple               # per-sample input shape, channels_last (spatial..., C)
    kwargs: dict = field(default_factory=dict)

    def make(self, data_format: str):
        return getattr(layers, self.layer)(*self.args, data_format=data_format, **self.kwargs)

    def input_shape(self, batch: int, data_format: str) -> tuple:
        *sp, c = self.shape
        return (batch, *sp, c) if data_format == "channels_last" else (batch, c, *sp)


def C(family, name, layer, args, shape, **kwargs):
    return Case(family, name, layer, tuple(args), tuple(shape), kwargs)


def _reference_conv2d():
    """The reference Conv2D shapes (nbconv.shapes' CSV) as layers, at batch 1 (the bench sets it)."""
    with open(reference_path(), newline="") as f:
        rows = list(csv.DictReader(f))
    return [C("Conv2D", r["name"], "Conv2D", (int(r["K"]), (int(r["R"]), int(r["S"]))),
              (int(r["H"]), int(r["W"]), int(r["C"])), strides=int(r["stride"]), padding=r["padding"],
              groups=int(r.get("groups") or 1)) for r in rows]


CASES = [
    C("Conv1D", "text_k3", "Conv1D", (256, 3), (256, 128), padding="same"),
    C("Conv1D", "text_k5", "Conv1D", (256, 5), (128, 128), padding="same"),
    C("Conv1D", "audio_d2", "Conv1D", (64, 3), (1024, 64), padding="same", dilation_rate=2),
    C("Conv1D", "audio_d4", "Conv1D", (64, 3), (1024, 64), padding="same", dilation_rate=4),
    C("Conv1D", "strided_k4_s2", "Conv1D", (128, 4), (512, 64), strides=2, padding="same"),
    *_reference_conv2d(),
    C("Conv3D", "video_first", "Conv3D", (64, 3), (8, 56, 56, 3), padding="same"),
    C("Conv3D", "mid_3x3x3", "Conv3D", (64, 3), (8, 28, 28, 64), padding="same"),
    C("Conv3D", "down_2x2x2_s2", "Conv3D", (128, 2), (8, 28, 28, 64), strides=2),
    C("GroupedConv2D", "resnext_28_g32", "Conv2D", (128, 3), (28, 28, 128), padding="same", groups=32),
    C("GroupedConv2D", "resnext_14_g32", "Conv2D", (256, 3), (14, 14, 256), padding="same", groups=32),
    C("GroupedConv2D", "g8_56", "Conv2D", (64, 3), (56, 56, 64), padding="same", groups=8),
    C("DepthwiseConv2D", "dw3x3_112", "DepthwiseConv2D", (3,), (112, 112, 32), padding="same"),
    C("DepthwiseConv2D", "dw3x3_s2_56", "DepthwiseConv2D", (3,), (56, 56, 128), strides=2, padding="same"),
    C("DepthwiseConv2D", "dw5x5_14", "DepthwiseConv2D", (5,), (14, 14, 512), padding="same"),
    C("SeparableConv2D", "sep3x3_56", "SeparableConv2D", (128, 3), (56, 56, 64), padding="same"),
    C("SeparableConv2D", "sep3x3_28", "SeparableConv2D", (256, 3), (28, 28, 128), padding="same"),
    C("SeparableConv2D", "sep5x5_14", "SeparableConv2D", (256, 5), (14, 14, 256), padding="same"),
    C("Conv2DTranspose", "k2_s2_valid", "Conv2DTranspose", (32, 2), (28, 28, 64), strides=2),
    C("Conv2DTranspose", "k3_s2_same", "Conv2DTranspose", (32, 3), (28, 28, 64), strides=2, padding="same"),
    C("Conv2DTranspose", "k4_s2_same", "Conv2DTranspose", (64, 4), (14, 14, 128), strides=2, padding="same"),
    C("Conv2DTranspose", "k5_s2_valid", "Conv2DTranspose", (16, 5), (14, 14, 32), strides=2),
    C("Pooling", "max2x2_56", "MaxPooling2D", ((2, 2),), (56, 56, 64)),
    C("Pooling", "max3x3_s2_112", "MaxPooling2D", ((3, 3),), (112, 112, 64), strides=2),
    C("Pooling", "avg2x2_56", "AveragePooling2D", ((2, 2),), (56, 56, 128)),
    C("Pooling", "avg3x3_s1_same_28", "AveragePooling2D", ((3, 3),), (28, 28, 192), strides=1,
      padding="same"),
    C("Pooling", "max1d_k2_256", "MaxPooling1D", (2,), (256, 128)),
    C("Pooling", "max3d_2_28", "MaxPooling3D", ((2, 2, 2),), (8, 28, 28, 64)),
    C("GlobalPooling", "gap_7x7x2048", "GlobalAveragePooling2D", (), (7, 7, 2048)),
    C("GlobalPooling", "gap_14x14x512", "GlobalAveragePooling2D", (), (14, 14, 512)),
    C("GlobalPooling", "gmp_28x28x256", "GlobalMaxPooling2D", (), (28, 28, 256)),
    C("GlobalPooling", "gap1d_256x128", "GlobalAveragePooling1D", (), (256, 128)),
    C("GlobalPooling", "gap3d_8x14x14x256", "GlobalAveragePooling3D", (), (8, 14, 14, 256)),
    C("LocallyConnected2D", "lc3x3_16x16x32", "LocallyConnected2D", (32, 3), (16, 16, 32)),
    C("LocallyConnected2D", "lc3x3_8x8x64", "LocallyConnected2D", (64, 3), (8, 8, 64)),
]

# --quick: one case per family (the report's section); --tiny: test-sized, one per family.
QUICK = ["text_k3", "res3a_3x3", "mid_3x3x3", "resnext_28_g32", "dw3x3_s2_56", "sep3x3_28",
         "k3_s2_same", "max3x3_s2_112", "gap_7x7x2048", "lc3x3_8x8x64"]
TINY = [
    C("Conv1D", "t_conv1d", "Conv1D", (8, 3), (16, 4), padding="same", dilation_rate=2),
    C("Conv2D", "t_conv2d", "Conv2D", (8, 3), (8, 8, 4), padding="same"),
    C("Conv3D", "t_conv3d", "Conv3D", (4, 2), (4, 6, 6, 3), strides=2),
    C("GroupedConv2D", "t_grouped", "Conv2D", (8, 3), (6, 6, 8), groups=2),
    C("DepthwiseConv2D", "t_dw", "DepthwiseConv2D", (3,), (7, 7, 4), strides=2, padding="same"),
    C("SeparableConv2D", "t_sep", "SeparableConv2D", (8, 3), (6, 6, 4), padding="same"),
    C("Conv2DTranspose", "t_transpose", "Conv2DTranspose", (4, 3), (5, 5, 4), strides=2, padding="same"),
    C("Pooling", "t_avgpool", "AveragePooling2D", ((3, 3),), (8, 8, 4), strides=1, padding="same"),
    C("GlobalPooling", "t_gmp", "GlobalMaxPooling2D", (), (5, 5, 8)),
    C("LocallyConnected2D", "t_local", "LocallyConnected2D", (4, 3), (6, 6, 3)),
]
