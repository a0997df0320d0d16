"""Keras 1 and Keras 2.0-2.3 constructors, as old code and the Keras documentation write them.

`Convolution2D(64, 9, 9, border_mode='same', subsample=(2, 2), dim_ordering='th')` builds today's
`nbconv.layers.Conv2D(64, (9, 9), strides=(2, 2), padding='same', data_format='channels_first')`,
converting the arguments as Keras 2's `keras/legacy/interfaces.py` did and warning (LegacyWarning)
with the modern call. The Keras 2 names here (`Conv2D`...) have Keras 2's meaning too: `Conv2D(64, 9, 9)`
is a 9x9 kernel, not (as in nbconv.layers and Keras 3) kernel 9 with strides 9. `hard_sigmoid` is
Keras 2's (0.2 x + 0.5, clipped), not Keras 3's (x / 6 + 0.5).
"""

from .. import layers as L
from .layers import (
    INIT_ALIASES,
    AtrousConvolution1D,
    AtrousConvolution2D,
    LegacyWarning,
    legacy,
    output_padding_for,
)
from .weights import convert_kernel

Convolution1D, Conv1D = legacy("Convolution1D", L.Conv1D), legacy("Conv1D", L.Conv1D)
Convolution2D, Conv2D = legacy("Convolution2D", L.Conv2D), legacy("Conv2D", L.Conv2D)
Convolution3D, Conv3D = legacy("Convolution3D", L.Conv3D), legacy("Conv3D", L.Conv3D)
AtrousConv1D, AtrousConv2D = AtrousConvolution1D, AtrousConvolution2D
Deconvolution2D = legacy("Deconvolution2D", L.Conv2DTranspose)
Deconv2D, Conv2DTranspose = (
    legacy("Deconv2D", L.Conv2DTranspose),
    legacy("Conv2DTranspose", L.Conv2DTranspose),
)
Deconvolution3D, Deconv3D = (
    legacy("Deconvolution3D", L.Conv3DTranspose),
    legacy("Deconv3D", L.Conv3DTranspose),
)
SeparableConvolution2D = legacy("SeparableConvolution2D", L.SeparableConv2D)
SeparableConv2D = legacy("SeparableConv2D", L.SeparableConv2D)
LocallyConnected1D = legacy("LocallyConnected1D", L.LocallyConnected1D)
LocallyConnected2D = legacy("LocallyConnected2D", L.LocallyConnected2D)
MaxPooling1D, MaxPooling2D, MaxPooling3D = (
    legacy(f"MaxPooling{r}D", getattr(L, f"MaxPooling{r}D")) for r in (1, 2, 3)
)
AveragePooling1D, AveragePooling2D, AveragePooling3D = (
    legacy(f"AveragePooling{r}D", getattr(L, f"AveragePooling{r}D")) for r in (1, 2, 3)
)
GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D = (
    legacy(f"GlobalMaxPooling{r}D", getattr(L, f"GlobalMaxPooling{r}D")) for r in (1, 2, 3)
)
GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D = (
    legacy(f"GlobalAveragePooling{r}D", getattr(L, f"GlobalAveragePooling{r}D")) for r in (1, 2, 3)
)
ZeroPadding1D, ZeroPadding2D, ZeroPadding3D = (
    legacy(f"ZeroPadding{r}D", getattr(L, f"ZeroPadding{r}D")) for r in (1, 2, 3)
)
Cropping1D, Cropping2D, Cropping3D = (legacy(f"Cropping{r}D", getattr(L, f"Cropping{r}D")) for r in (1, 2, 3))
UpSampling2D = legacy("UpSampling2D", L.UpSampling2D)
Dense, Dropout, Activation = (
    legacy("Dense", L.Dense),
    legacy("Dropout", L.Dropout),
    legacy("Activation", L.Activation),
)
BatchNormalization = legacy("BatchNormalization", L.BatchNormalization)

__all__ = [
    "INIT_ALIASES",
    "LegacyWarning",
    "convert_kernel",
    "output_padding_for",
    "Activation",
    "AtrousConv1D",
    "AtrousConv2D",
    "AtrousConvolution1D",
    "AtrousConvolution2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "BatchNormalization",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Conv3D",
    "Convolution1D",
    "Convolution2D",
    "Convolution3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "Deconv2D",
    "Deconv3D",
    "Deconvolution2D",
    "Deconvolution3D",
    "Dense",
    "Dropout",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "LocallyConnected1D",
    "LocallyConnected2D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "SeparableConv2D",
    "SeparableConvolution2D",
    "UpSampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
]
