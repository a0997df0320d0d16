"""Keras 1 / Keras 2 / tf-keras model configs -> the Keras 3 form that keras_config builds.

Keras 2 (and tf-keras in `.h5`) wrote `class_name`/`config` without `module`, `batch_input_shape`
on the first layer, and inbound nodes as nested lists `[[name, node, tensor, kwargs], ...]`; Keras 1
also used its own class and argument names, which are converted with the same table as
nbconv.legacy's constructors (interfaces.py). Nothing is dropped unless it is redundant or checked."""

from __future__ import annotations

from ..keras_config import LoadError
from . import interfaces
from .layers import keras2_semantics, output_padding_for

# Keras 1 class names -> today's (the rest kept their names).
CLASS_NAMES = {
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "AtrousConvolution1D": "Conv1D",
    "AtrousConvolution2D": "Conv2D",
    "Deconvolution2D": "Conv2DTranspose",
    "SeparableConvolution2D": "SeparableConv2D",
}
_NO_GROUPS = (
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
)
_INPUT_KEYS = ("input_dim", "input_length")


def _fail(entry, message):
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    raise LoadError(
        f"Layer '{config.get('name', entry.get('name'))}' (class {entry.get('class_name')!r}): {message}"
    )


def _initializer(value):
    """Keras 2.0-2.2's VarianceScaling(distribution='normal') was a truncated normal."""
    if isinstance(value, dict) and value.get("class_name") == "VarianceScaling":
        inner = value.get("config")
        if isinstance(inner, dict) and inner.get("distribution") == "normal":
            return dict(value, config=dict(inner, distribution="truncated_normal"))
    return value


def layer_entry(entry):
    """One layer entry {class_name, config, [name, inbound_nodes]} in Keras 3's form (module added)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise LoadError(f"A layer entry must be a dict with a `config` dict. Received: {str(entry)[:200]}")
    if "module" in entry or "registered_name" in entry:
        _fail(entry, "a Keras 3 entry (`module`) in a Keras 1/2 file.")
    old = entry.get("class_name")
    cls = CLASS_NAMES.get(old, old) if isinstance(old, str) else old
    config = dict(entry["config"])
    batch_shape = config.pop("batch_input_shape", None)
    dtype = config.pop("input_dtype", None)  # Keras 1's InputLayer
    if dtype is not None:
        config.setdefault("dtype", dtype)
    for key in _INPUT_KEYS:  # Keras 1 wrote input_dim on every Dense; the weight shapes check it
        config.pop(key, None)
    try:
        _, config, _ = interfaces.convert(cls, [], config)
    except (TypeError, ValueError) as e:
        _fail(entry, str(e))
    keras2_semantics(config)
    for key in [k for k in config if k.endswith("_initializer")]:
        config[key] = _initializer(config[key])
    if "atrous_rate" in config:
        config["dilation_rate"] = config.pop("atrous_rate")
    # tf-keras inherits Conv's `groups` key here; only 1 makes sense
    if cls in _NO_GROUPS and "groups" in config and config.pop("groups") != 1:
        _fail(entry, "`groups` other than 1 is not supported on this layer.")
    if "_output_shape" in config:
        try:
            config["output_padding"] = output_padding_for(
                config.pop("_output_shape"),
                config.get("filters"),
                config.get("kernel_size"),
                config.get("strides", 1),
                config.get("padding", "valid"),
                config.get("data_format"),
                config.get("dilation_rate", 1),
            )
        except (TypeError, ValueError) as e:
            _fail(entry, str(e))
    if cls == "InputLayer" and batch_shape is not None:
        config["batch_shape"] = batch_shape
    out = {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}
    if "name" in entry:
        out["name"] = entry["name"]
    if "inbound_nodes" in entry:
        out["inbound_nodes"] = [_node(entry, n) for n in _list(entry, entry["inbound_nodes"])]
    return out, batch_shape


def _list(entry, value):
    if not isinstance(value, list):
        _fail(entry, f"bad inbound_nodes {str(value)[:200]}")
    return value


def _tensor(entry, ref):
    if not (isinstance(ref, list) and len(ref) in (3, 4)):
        _fail(entry, f"bad inbound node entry {str(ref)[:200]}")
    return {"class_name": "__keras_tensor__", "config": {"keras_history": list(ref[:3])}}


def _node(entry, node):
    """[[name, node, tensor, kwargs], ...] -> {"args": [tensor or [tensors]], "kwargs": kwargs}."""
    if isinstance(node, dict):
        _fail(entry, "an inbound node in Keras 3's form in a Keras 1/2 file (`keras_version`).")
    refs = _list(entry, node)
    if not refs:
        _fail(entry, "an empty inbound node.")
    tensors = [_tensor(entry, r) for r in refs]
    kwargs = refs[-1][3] if len(refs[-1]) == 4 else {}
    return {"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": kwargs}


def _sequential(config):
    if isinstance(config, list):  # Keras 1 and Keras <= 2.2.4 wrote the layer list alone
        config = {"name": None, "layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise LoadError("A Sequential config needs a `layers` list.")
    unknown = set(config) - {"name", "layers", "build_input_shape", "trainable"}
    if unknown:
        raise LoadError(f"Model '{config.get('name')}': unknown config keys {sorted(unknown)}.")
    layers = []
    for i, entry in enumerate(config["layers"]):
        layer, batch_shape = layer_entry(entry)
        batch_shape = batch_shape if batch_shape is not None else config.get("build_input_shape")
        if i == 0 and batch_shape is not None and layer["class_name"] != "InputLayer":
            name = f"{layer['config'].get('name')}_input"  # as Keras 2 named the implied InputLayer
            layers.append(
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "registered_name": None,
                    "config": {
                        "batch_shape": batch_shape,
                        "dtype": layer["config"].get("dtype"),
                        "name": name,
                    },
                }
            )
        layers.append(layer)
    out = {"name": config.get("name"), "layers": layers, "trainable": config.get("trainable")}
    return {k: v for k, v in out.items() if v is not None}


def _functional(config):
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise LoadError("A Functional config needs a `layers` list.")
    unknown = set(config) - {"name", "layers", "input_layers", "output_layers", "trainable"}
    if unknown:
        raise LoadError(f"Model '{config.get('name')}': unknown config keys {sorted(unknown)}.")
    return dict(config, layers=[layer_entry(e)[0] for e in config["layers"]])


def model_config(config):
    """A Keras 1/2 top-level {class_name, config} as the Keras 3 {module, class_name, config}."""
    if not isinstance(config, dict) or "config" not in config:
        raise LoadError("The model config must be a dict with a `config`.")
    name = config.get("class_name")
    if name == "Sequential":
        return {"module": "keras", "class_name": "Sequential", "config": _sequential(config["config"])}
    if name in ("Model", "Functional"):
        return {"module": "keras", "class_name": "Functional", "config": _functional(config["config"])}
    raise LoadError(f"Model class {name!r} is not supported: nbconv loads Sequential and functional models.")
