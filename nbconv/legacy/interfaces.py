"""Keras 1 argument names -> today's, as Keras 2.0-2.3 converted them (`keras/legacy/interfaces.py`).

One table serves both the Keras-1 constructors (nbconv.legacy) and Keras 1 configs in legacy `.h5`
files. `convert(kind, args, kwargs)` takes the positional arguments without `self`."""

from __future__ import annotations

from dataclasses import dataclass, field

DIM_ORDERING = {"tf": "channels_last", "th": "channels_first", "default": None}
_OBJECTS = [
    ("init", "kernel_initializer"),
    ("W_regularizer", "kernel_regularizer"),
    ("b_regularizer", "bias_regularizer"),
    ("W_constraint", "kernel_constraint"),
    ("b_constraint", "bias_constraint"),
    ("bias", "use_bias"),
]
_CONV = [
    ("nb_filter", "filters"),
    ("subsample", "strides"),
    ("border_mode", "padding"),
    ("dim_ordering", "data_format"),
] + _OBJECTS
_CONV1D = [
    ("nb_filter", "filters"),
    ("filter_length", "kernel_size"),
    ("subsample_length", "strides"),
    ("border_mode", "padding"),
] + _OBJECTS
_SEPARABLE = [
    ("nb_filter", "filters"),
    ("subsample", "strides"),
    ("border_mode", "padding"),
    ("dim_ordering", "data_format"),
    ("b_regularizer", "bias_regularizer"),
    ("b_constraint", "bias_constraint"),
    ("bias", "use_bias"),
]
_ORDERING = [("dim_ordering", "data_format")]
_POOL = ("pool_size", "strides", "padding")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _strides_positional():
    return ValueError(
        "It seems that you are using the Keras 2 and you are passing both `kernel_size` and "
        "`strides` as integer positional arguments. For safety reasons, this is disallowed. "
        "Pass `strides` as a keyword argument instead."
    )


def _conv1d(args, kwargs):
    if "input_dim" in kwargs:
        kwargs["input_shape"] = (kwargs.pop("input_length", None), kwargs.pop("input_dim"))
        return args, [("input_shape", "input_dim")]
    return args, []


def _conv2d(args, kwargs):
    if len(args) > 3:
        raise TypeError("Layer can receive at most 3 positional arguments.")
    if len(args) == 3 and _is_int(args[1]) and _is_int(args[2]):
        if {"padding", "strides", "data_format"} & set(kwargs):
            raise _strides_positional()
        return [args[0], (args[1], args[2])], [("kernel_size", "nb_row/nb_col")]
    if len(args) == 2 and _is_int(args[1]) and "nb_col" in kwargs:
        return [args[0], (args[1], kwargs.pop("nb_col"))], [("kernel_size", "nb_row/nb_col")]
    if len(args) <= 1 and "nb_row" in kwargs and "nb_col" in kwargs:
        size = (kwargs.pop("nb_row"), kwargs.pop("nb_col"))
        if args:
            return [args[0], size], [("kernel_size", "nb_row/nb_col")]
        kwargs["kernel_size"] = size
        return args, [("kernel_size", "nb_row/nb_col")]
    return args, []


def _conv3d(args, kwargs):
    dims = ["kernel_dim1", "kernel_dim2", "kernel_dim3"]
    if len(args) > 4:
        raise TypeError("Layer can receive at most 4 positional arguments.")
    if len(args) == 4 and all(_is_int(a) for a in args[1:]):
        return [args[0], tuple(args[1:])], [("kernel_size", "kernel_dim*")]
    if len(args) == 3 and _is_int(args[1]) and _is_int(args[2]):
        if {"padding", "strides", "data_format"} & set(kwargs):
            raise _strides_positional()
        if "kernel_dim3" in kwargs:
            return [args[0], (args[1], args[2], kwargs.pop("kernel_dim3"))], [("kernel_size", "kernel_dim*")]
    elif len(args) == 2 and _is_int(args[1]) and all(d in kwargs for d in dims[1:]):
        return [args[0], (args[1], *(kwargs.pop(d) for d in dims[1:]))], [("kernel_size", "kernel_dim*")]
    elif len(args) <= 1 and all(d in kwargs for d in dims):
        size = tuple(kwargs.pop(d) for d in dims)
        if args:
            return [args[0], size], [("kernel_size", "kernel_dim*")]
        kwargs["kernel_size"] = size
        return args, [("kernel_size", "kernel_dim*")]
    return args, []


def _separable(args, kwargs):
    converted = []
    if "init" in kwargs:
        kwargs["depthwise_initializer"] = kwargs["pointwise_initializer"] = kwargs.pop("init")
        converted.append(("init", "depthwise_initializer/pointwise_initializer"))
    args, more = _conv2d(args, kwargs)
    return args, converted + more


def _deconv2d(args, kwargs):
    """Keras 2 dropped `output_shape`; nbconv keeps it (as `_output_shape`) to derive `output_padding`."""
    converted = []
    if len(args) == 4 and isinstance(args[3], (tuple, list)):
        kwargs["_output_shape"], args = tuple(args[3]), list(args[:3])
        converted.append(("output_shape", None))
    if "output_shape" in kwargs:
        kwargs["_output_shape"] = kwargs.pop("output_shape")
        converted.append(("output_shape", None))
    args, more = _conv2d(args, kwargs)
    return args, converted + more


def _batchnorm(args, kwargs):
    if args:
        raise TypeError(
            "The `BatchNormalization` layer does not accept positional arguments. "
            "Use keyword arguments instead."
        )
    if "mode" in kwargs:
        if kwargs.pop("mode") != 0:
            raise TypeError(
                "The `mode` argument of `BatchNormalization` no longer exists. `mode=1` and "
                "`mode=2` are no longer supported."
            )
        return args, [("mode", None)]
    return args, []


def _zeropadding2d(args, kwargs):
    """A dict (Keras 1) or a 4-tuple (Keras 1.2: top, bottom, left, right) becomes two pairs."""
    sides = ("top_pad", "bottom_pad", "left_pad", "right_pad")
    value = kwargs.get("padding", args[0] if args else None)
    if isinstance(value, dict) and set(value) <= set(sides):
        t, b, le, r = (value.get(s, 0) for s in sides)
    elif isinstance(value, (tuple, list)) and len(value) == 4 and all(_is_int(v) for v in value):
        t, b, le, r = value
    else:
        return args, []
    if "padding" in kwargs:
        kwargs["padding"] = ((t, b), (le, r))
    else:
        args = [((t, b), (le, r)), *args[1:]]
    return args, [("padding", "padding")]


@dataclass(frozen=True)
class Interface:
    positional: tuple | None  # names allowed positionally (None: not checked)
    conversions: list = field(default_factory=list)
    preprocessor: object = None


INTERFACES = {
    "Dense": Interface(("units",), [("output_dim", "units")] + _OBJECTS),
    "Dropout": Interface(("rate", "noise_shape", "seed"), [("p", "rate")]),
    "Conv1D": Interface(("filters", "kernel_size"), _CONV1D, _conv1d),
    "Conv2D": Interface(("filters", "kernel_size"), _CONV, _conv2d),
    "Conv3D": Interface(("filters", "kernel_size"), _CONV, _conv3d),
    "Conv2DTranspose": Interface(("filters", "kernel_size"), _CONV, _deconv2d),
    "SeparableConv2D": Interface(("filters", "kernel_size"), _SEPARABLE, _separable),
    "LocallyConnected1D": Interface(("filters", "kernel_size"), _CONV1D, _conv1d),
    "LocallyConnected2D": Interface(("filters", "kernel_size"), _CONV, _conv2d),
    "MaxPooling1D": Interface(
        _POOL, [("pool_length", "pool_size"), ("stride", "strides"), ("border_mode", "padding")]
    ),
    "MaxPooling2D": Interface(_POOL, [("border_mode", "padding")] + _ORDERING),
    "GlobalMaxPooling2D": Interface(None, _ORDERING),
    "UpSampling1D": Interface(("size",), [("length", "size")]),
    "UpSampling2D": Interface(("size",), _ORDERING),
    "ZeroPadding2D": Interface(("padding",), _ORDERING, _zeropadding2d),
    "ZeroPadding3D": Interface(("padding",), _ORDERING),
    "Cropping2D": Interface(("cropping",), _ORDERING),
    "BatchNormalization": Interface(
        (), [("beta_init", "beta_initializer"), ("gamma_init", "gamma_initializer")], _batchnorm
    ),
}
INTERFACES["MaxPooling3D"] = INTERFACES["MaxPooling2D"]
for _kind in ("1D", "2D", "3D"):
    INTERFACES[f"AveragePooling{_kind}"] = INTERFACES[f"MaxPooling{_kind}"]
for _name in ("GlobalMaxPooling3D", "GlobalAveragePooling2D", "GlobalAveragePooling3D"):
    INTERFACES[_name] = INTERFACES["GlobalMaxPooling2D"]
INTERFACES["UpSampling3D"] = INTERFACES["UpSampling2D"]
INTERFACES["Cropping3D"] = INTERFACES["Cropping2D"]


def convert(kind, args, kwargs):
    """(args, kwargs, converted) as Keras 2 passed them on; `converted` lists (new, old) names."""
    spec = INTERFACES.get(kind)
    args, kwargs = list(args), dict(kwargs)
    if spec is None:
        return args, kwargs, []
    converted = []
    if spec.preprocessor is not None:
        args, converted = spec.preprocessor(args, kwargs)
    if spec.positional is not None and len(args) > len(spec.positional):
        raise TypeError(
            f"`{kind}` can accept only {len(spec.positional)} positional arguments "
            f"{spec.positional}, but you passed the following positional arguments: {list(args)}"
        )
    if isinstance(kwargs.get("dim_ordering"), str) and kwargs["dim_ordering"] in DIM_ORDERING:
        kwargs["dim_ordering"] = DIM_ORDERING[kwargs["dim_ordering"]]
    for old, new in spec.conversions:
        if old in kwargs:
            if new in kwargs:
                raise TypeError(
                    f"For the `{new}` argument, the layer received both the legacy keyword "
                    f"argument `{old}` and the Keras 2 keyword argument `{new}`. Stick to the "
                    "latter!"
                )
            kwargs[new] = kwargs.pop(old)
            converted.append((new, old))
    return args, kwargs, converted


def _show(value):
    if isinstance(value, str):
        return f'"{value}"'
    return getattr(value, "__name__", None) or ("array" if hasattr(value, "__array__") else repr(value))


def signature(name, args, kwargs):
    """The modern call, as Keras 2's warning wrote it: `Conv2D(64, (9, 9), padding="same")`."""
    parts = [_show(a) for a in args] + [f"{k}={_show(v)}" for k, v in kwargs.items()]
    return f"`{name}({', '.join(parts)})`"
