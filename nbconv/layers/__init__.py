"""Keras-exact layers on nbconv's kernels: same signatures, defaults, weights, shapes and errors."""
from .base import Layer, clear_session
from .conv import BaseConv, Conv1D, Conv2D, Conv3D
from .conv_base import ConvLayer
from .core import Activation, Dense, Dropout, Flatten, Input, InputLayer
from .depthwise import DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D
from .local import LocallyConnected1D, LocallyConnected2D
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .normalization import BatchNormalization, Normalization, ReLU, Rescaling, Softmax
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AveragePooling3D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAveragePooling3D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    GlobalMaxPooling3D,
    MaxPooling1D,
    MaxPooling2D,
    MaxPooling3D,
)
from .reshaping import (
    Cropping1D,
    Cropping2D,
    Cropping3D,
    Reshape,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
    ZeroPadding3D,
)
from .transpose import Conv1DTranspose, Conv2DTranspose, Conv3DTranspose

# Aliases: the same classes, as in keras.layers.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose, Convolution3DTranspose = (
    Conv1DTranspose, Conv2DTranspose, Conv3DTranspose)
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (
    GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAveragePooling3D)
# Keras 2.0-2.3's names (gone from Keras 3 and tf-keras); Keras-1 arguments: nbconv.legacy.
Deconvolution2D = Deconv2D = Conv2DTranspose
Deconvolution3D = Deconv3D = Conv3DTranspose


def AtrousConvolution1D(*args, **kwargs):
    """Keras 2's deprecated `AtrousConvolution1D(..., atrous_rate=r)`: `Conv1D(..., dilation_rate=r)`."""
    from ..legacy import AtrousConvolution1D as make
    return make(*args, **kwargs)


def AtrousConvolution2D(*args, **kwargs):
    """Keras 2's deprecated `AtrousConvolution2D(..., atrous_rate=r)`: `Conv2D(..., dilation_rate=r)`."""
    from ..legacy import AtrousConvolution2D as make
    return make(*args, **kwargs)


LAYER_CLASSES = {cls.__name__: cls for cls in (
    Conv1D, Conv2D, Conv3D, MaxPooling1D, MaxPooling2D, MaxPooling3D, AveragePooling1D, AveragePooling2D,
    AveragePooling3D, GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D, GlobalAveragePooling1D,
    GlobalAveragePooling2D, GlobalAveragePooling3D, LocallyConnected1D, LocallyConnected2D, Dense, Flatten,
    Activation, Dropout, InputLayer, DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D,
    Conv1DTranspose, Conv2DTranspose, Conv3DTranspose,
    BatchNormalization, Normalization, ReLU, Rescaling, Softmax, Add, Subtract, Multiply, Average, Maximum,
    Minimum, Concatenate, ZeroPadding1D, ZeroPadding2D, ZeroPadding3D, Cropping1D, Cropping2D, Cropping3D,
    Reshape, UpSampling2D)}


def deserialize(config):
    """A layer from {'class_name': ..., 'config': ...} (nbconv's or Keras's serialisation)."""
    name = config.get("class_name")
    if name not in LAYER_CLASSES:
        raise ValueError(f"Unknown layer: '{name}'. nbconv provides {sorted(LAYER_CLASSES)}")
    return LAYER_CLASSES[name].from_config(dict(config.get("config") or {}))


def serialize(layer):
    return {"module": "nbconv.layers", "class_name": type(layer).__name__, "config": layer.get_config()}


__all__ = sorted(LAYER_CLASSES) + [
    "Input", "Layer", "ConvLayer", "BaseConv", "clear_session", "deserialize", "serialize",
    "Convolution1D", "Convolution2D", "Convolution3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
    "AvgPool1D", "AvgPool2D", "AvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
    "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "Convolution1DTranspose",
    "Convolution2DTranspose", "Convolution3DTranspose", "SeparableConvolution1D", "SeparableConvolution2D",
    "Deconvolution2D", "Deconv2D", "Deconvolution3D", "Deconv3D", "AtrousConvolution1D",
    "AtrousConvolution2D"]
