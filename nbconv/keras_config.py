"""Keras 3 model configs -> nbconv models, through an allowlist: every class, module, config key and
call argument is checked against what nbconv implements; nothing is imported or evaluated."""
from __future__ import annotations

import contextlib
import inspect
import math

from . import layers as L
from .keras_dtypes import compute_in_float32, half_policy_warning, weights_as_float
from .layers import base
from .layers.operations import OPERATIONS, NumpyOperation

_half_layers: list = []         # (name, policy) of the model being built's half-precision layers
DEFAULT_MAX_WEIGHTS = 1 << 29   # float elements (2 GiB of float32) a loaded model may hold
MAX_LAYERS = 5000               # Keras's largest applications have ~1,000; graph building is O(n^2) at worst


class LoadError(ValueError):
    """A Keras file or model that nbconv refuses to load (malformed, unsupported or unsafe)."""


_MODULES = {"keras", "keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
            "keras.activations"}
_MODEL_MODULES = {"keras", "keras.models", "keras.src.models.functional", "keras.src.models.sequential"}
_ENTRY_KEYS = {"module", "class_name", "config", "registered_name", "build_config", "name", "inbound_nodes"}
_MODEL_KEYS = {"Functional": {"name", "trainable", "layers", "input_layers", "output_layers"},
               "Sequential": {"name", "trainable", "dtype", "layers", "build_input_shape"}}
_LEGACY_KEYS = {"InputLayer": {"batch_input_shape"}}
_key_cache: dict[type, frozenset] = {}


def allowed_keys(cls):
    """The config keys a class accepts: the named parameters of every __init__ in its MRO."""
    if cls not in _key_cache:
        keys = set(_LEGACY_KEYS.get(cls.__name__, ()))
        for klass in cls.__mro__:
            if "__init__" in vars(klass) and klass is not object:
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                        keys.add(p.name)
        _key_cache[cls] = frozenset(keys)
    return _key_cache[cls]


def _check_objects(value, where, depth=0):
    """Nested serialised objects (initializers, dtype policies...) must be Keras's own, unregistered."""
    if depth > 20:
        raise LoadError(f"{where}: the config is nested too deeply.")
    if isinstance(value, dict):
        if "module" in value or "registered_name" in value:
            module, registered = value.get("module"), value.get("registered_name")
            if module not in _MODULES or registered not in (None, value.get("class_name")):
                raise LoadError(f"{where}: refers to {module}.{value.get('class_name')} (registered name "
                                f"{registered!r}): custom and non-Keras objects are refused.")
        for v in value.values():
            _check_objects(v, where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _check_objects(v, where, depth + 1)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise LoadError(f"{where}: unexpected value of type {type(value).__name__}.")


def make_layer(entry):
    """One layer from its {module, class_name, config, ...} entry, or LoadError naming it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise LoadError(f"A layer entry must be a dict with a `config` dict. Received: {str(entry)[:200]}")
    cls_name, config = entry.get("class_name"), entry["config"]
    where = f"Layer '{config.get('name')}' (class {cls_name!r})"
    if entry.get("module") in OPERATIONS and cls_name in OPERATIONS[entry["module"]]:
        name = config.get("name")
        if (entry.get("registered_name") not in (None, cls_name) or set(entry) - _ENTRY_KEYS
                or set(config) != {"name"} or not isinstance(name, str) or "/" in name):
            raise LoadError(f"{where}: an operation entry holds exactly a `name` (a string without `/`) "
                            f"in its config. Received: {str(entry)[:200]}")
        return OPERATIONS[entry["module"]][cls_name](name=name)
    if cls_name in ("Lambda", "TFSMLayer", "TorchModuleWrapper") or cls_name not in L.LAYER_CLASSES:
        raise LoadError(f"{where} is not supported: nbconv loads only {sorted(L.LAYER_CLASSES)}.")
    if entry.get("module") not in _MODULES or entry.get("registered_name") not in (None, cls_name):
        raise LoadError(f"{where}: module {entry.get('module')!r} / registered name "
                        f"{entry.get('registered_name')!r} is not Keras's built-in layer.")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise LoadError(f"{where}: unknown entry keys {sorted(unknown)}.")
    cls = L.LAYER_CLASSES[cls_name]
    unknown = set(config) - allowed_keys(cls)
    if unknown:
        raise LoadError(f"{where}: unknown config keys {sorted(unknown)}: refused rather than ignored.")
    _check_objects(config, where)
    if not isinstance(config.get("name"), str) or "/" in config["name"]:
        raise LoadError(f"{where}: `name` must be a string without `/`.")
    try:
        return cls.from_config(compute_in_float32(dict(config), _half_layers))
    except Exception as e:
        raise LoadError(f"{where}: {type(e).__name__}: {e}") from e


def _history(arg, made, where):
    if not (isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__"
            and isinstance(arg.get("config"), dict)):
        raise LoadError(f"{where}: only layer outputs may be call arguments. Received: {str(arg)[:200]}")
    hist = arg["config"].get("keras_history")
    if (not isinstance(hist, list) or len(hist) != 3 or hist[0] not in made
            or not isinstance(hist[1], int) or hist[2] != 0):
        raise LoadError(f"{where}: bad keras_history {hist!r}.")
    return hist


def _resolve(args, made, where, depth=0):
    if depth > 3:
        raise LoadError(f"{where}: call arguments nested too deeply.")
    if isinstance(args, list):
        return [_resolve(a, made, where, depth + 1) for a in args]
    name, index, _ = _history(args, made, where)
    nodes = made[name].__dict__.get("_inbound_nodes", [])
    if index >= len(nodes):
        raise KeyError(name)  # not created yet: retried on the next pass
    return nodes[index].output


def _number(value):
    """A finite JSON number (an operation's scalar argument); huge ints are refused, not converted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) < 2 ** 63 if isinstance(value, int) else math.isfinite(value)


def _endpoints(spec, made, what):
    if isinstance(spec, list) and spec and isinstance(spec[0], str):
        spec = [spec]
    if not isinstance(spec, list) or not spec:
        raise LoadError(f"Bad `{what}`: {str(spec)[:200]}")
    out = []
    for s in spec:
        if not (isinstance(s, list) and len(s) == 3 and s[0] in made and isinstance(s[1], int) and s[2] == 0):
            raise LoadError(f"Bad `{what}` entry {str(s)[:200]}")
        nodes = made[s[0]].__dict__.get("_inbound_nodes", [])
        if not 0 <= s[1] < len(nodes):
            raise LoadError(f"Bad `{what}` entry {s}: no such node.")
        out.append(nodes[s[1]].output)
    return out


def _functional(config):
    from .models import Model
    entries, made, pending = config.get("layers"), {}, []
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        raise LoadError(f"A Functional config needs a `layers` list of at most {MAX_LAYERS} layers.")
    for entry in entries:
        layer = make_layer(entry)
        if layer.name in made:
            raise LoadError(f"Layer name '{layer.name}' is used twice.")
        made[layer.name] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list) or (isinstance(layer, L.InputLayer) and nodes):
            raise LoadError(f"Layer '{layer.name}': bad inbound_nodes.")
        pending.append([layer, list(nodes)])
    while any(nodes for _, nodes in pending):
        progress = False
        for item in pending:
            layer, nodes = item
            while nodes:
                node, where = nodes[0], f"Layer '{layer.name}' (class {type(layer).__name__!r})"
                if not isinstance(node, dict) or set(node) - {"args", "kwargs"}:
                    raise LoadError(f"{where}: bad inbound node {str(node)[:200]}")
                kwargs = node.get("kwargs") or {}
                if not isinstance(kwargs, dict) or any(kwargs[k] not in (None, False) for k in kwargs) or (
                        set(kwargs) - {"mask", "training"}):
                    raise LoadError(f"{where}: unsupported call arguments {str(kwargs)[:200]}")
                args = node.get("args")
                operation = isinstance(layer, NumpyOperation)
                if not isinstance(args, list) or len(args) != (2 if operation else 1):
                    raise LoadError(f"{where}: a layer call takes exactly one input (or list of inputs), "
                                    "an operation two arguments.")
                try:
                    inputs = (_resolve(args[0], made, where) if not operation else
                              [a if _number(a) else _resolve(a, made, where) for a in args])
                except KeyError:
                    break
                try:
                    layer(inputs)
                except Exception as e:
                    raise LoadError(f"{where}: {type(e).__name__}: {e}") from e
                nodes.pop(0)
                progress = True
        if not progress:
            raise LoadError("The layer graph cannot be built: a cycle, or a node refers to a missing one.")
    try:
        inputs = _endpoints(config.get("input_layers"), made, "input_layers")
        outputs = _endpoints(config.get("output_layers"), made, "output_layers")
        model = Model(inputs if len(inputs) > 1 else inputs[0], outputs if len(outputs) > 1 else outputs[0],
                      name=config.get("name"))
    except LoadError:
        raise
    except Exception as e:
        raise LoadError(f"The model cannot be built: {e}") from e
    unused = sorted(set(made) - {n.layer.name for n in model._nodes})
    if unused:
        raise LoadError(f"Layers {unused[:10]} are not connected to the model's outputs.")
    # Keras's order (the weights file's too): the config's; operations are not layers
    model._layers = [la for la in made.values() if not isinstance(la, NumpyOperation)]
    return model


def _sequential(config):
    from .models import Sequential
    entries = config.get("layers")
    if not isinstance(entries, list) or len(entries) > MAX_LAYERS:
        raise LoadError(f"A Sequential config needs a `layers` list of at most {MAX_LAYERS} layers.")
    model = Sequential(name=config.get("name"))
    for entry in entries:
        layer = make_layer(entry)
        try:
            model.add(layer)
        except Exception as e:
            raise LoadError(f"Layer '{layer.name}': {type(e).__name__}: {e}") from e
    return model


@contextlib.contextmanager
def weight_budget(max_weights):
    base.WEIGHT_BUDGET[:] = [max_weights]
    try:
        yield
    finally:
        base.WEIGHT_BUDGET.clear()


def model_from_config(model_config, max_weights=DEFAULT_MAX_WEIGHTS):
    """A model from a Keras 3 top-level config {module, class_name, config, ...}."""
    if not isinstance(model_config, dict) or not isinstance(model_config.get("config"), dict):
        raise LoadError("The model config must be a dict with a `config` dict.")
    cls_name, config = model_config.get("class_name"), model_config["config"]
    if cls_name not in _MODEL_KEYS or model_config.get("module") not in _MODEL_MODULES:
        raise LoadError(f"Model class {model_config.get('module')!r}.{cls_name!r} is not supported: nbconv "
                        "loads Keras's Functional and Sequential models.")
    unknown = set(config) - _MODEL_KEYS[cls_name]
    if unknown:
        raise LoadError(f"Model '{config.get('name')}': unknown config keys {sorted(unknown)}.")
    base_names = dict(base._name_counts)
    _half_layers.clear()
    try:
        with weight_budget(max_weights):
            model = _functional(config) if cls_name == "Functional" else _sequential(config)
    except RecursionError as e:
        raise LoadError("The model config is nested too deeply.") from e
    finally:  # loading does not consume automatic names
        base._name_counts.clear()
        base._name_counts.update(base_names)
    if _half_layers:
        half_policy_warning(config.get("name"), _half_layers)
        _half_layers.clear()
    return model


def layer_weight_groups(model):
    """(h5 group name, layer) in Keras's save order: class name in snake case, `_1`, `_2`… repeats."""
    used: dict[str, int] = {}
    out = []
    for layer in model.layers:
        name = base.to_snake_case(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        out.append((name, layer))
    return out


def check_weights(layer, values):
    """Float arrays of exactly the shapes nbconv's layer implies (Keras's order), then set."""
    expect = [w.shape for w in layer.weights]
    shapes = [tuple(v.shape) for v in values]
    if shapes != expect:
        raise LoadError(f"Layer '{layer.name}' (class {type(layer).__name__!r}): weight shapes {shapes} "
                        f"differ from the {expect} its config implies.")
    values = weights_as_float(values)
    for i, v in enumerate(values):
        if isinstance(layer, L.Normalization) and i == 2 and v.dtype.kind in "iu":
            continue  # Keras's int `count` of samples seen by adapt(): not used at inference
        if v.dtype.kind != "f" or v.dtype.itemsize not in (2, 4, 8):
            raise LoadError(f"Layer '{layer.name}': weights must be float16/32/64 or bfloat16. "
                            f"Received {v.dtype}.")
    layer.set_weights(values)
