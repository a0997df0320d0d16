"""Half-precision Keras models: nbconv has no float16/bfloat16 kernels, so a layer whose dtype
policy computes in float16 or bfloat16 is built to compute in float32 (with one warning per model),
and bfloat16 weights are widened to float32 exactly (a bfloat16 is a float32's upper 16 bits)."""
from __future__ import annotations

import warnings

import numpy as np

HALF_POLICIES = ("bfloat16", "float16", "mixed_bfloat16", "mixed_float16")


class HalfPrecisionWarning(UserWarning):
    """A loaded layer's Keras dtype policy computes in float16/bfloat16; nbconv computes in float32."""


def bfloat16_to_float32(bits):
    """bfloat16 values (ml_dtypes' numpy type, or the raw 2-byte opaque data of an HDF5 dataset
    Keras tags `dtype="bfloat16"`) as float32, exactly."""
    b = np.ascontiguousarray(bits)
    return (b.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(b.shape)


def weights_as_float(values):
    return [bfloat16_to_float32(v) if v.dtype.name == "bfloat16" else v for v in values]


def compute_in_float32(config, seen):
    """`config` with a half-precision dtype policy replaced by float32; (name, policy) noted in `seen`."""
    policy = config.get("dtype")
    name = policy.get("config", {}).get("name") if isinstance(policy, dict) else policy
    if isinstance(name, str) and name in HALF_POLICIES:
        seen.append((config.get("name"), name))
        config["dtype"] = "float32"
    return config


def half_policy_warning(model_name, seen):
    policies = sorted({p for _, p in seen})
    warnings.warn(HalfPrecisionWarning(
        f"Model '{model_name}': {len(seen)} layers (first: '{seen[0][0]}') have the dtype policy "
        f"{policies}; nbconv has no float16/bfloat16 kernels and computes them in float32 (weights "
        "widened exactly), so its outputs are float32 and nearer the exact result than Keras's."),
        stacklevel=4)
