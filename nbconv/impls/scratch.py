"""Per-thread scratch buffers, reused across calls, for a kernel's temporaries.

glibc's malloc serves large blocks by mmap and unmaps them on free (or trims its heap), so a
fresh multi-MB temporary is page-faulted in on every call: that can more than double the time of
a memory-bound call such as winograd_f4x4_tiled at batch 1, and since it depends on the
allocator's history, timings flip between runs. A reused buffer faults once. Each thread keeps
the largest block it has needed per name.
"""
from __future__ import annotations

import math
import threading

import numpy as np

ALIGN = 64         # a cache line, and the widest vector (streaming stores need it)
_local = threading.local()


def aligned_empty(shape, dtype, align: int = ALIGN) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on an `align`-byte boundary (numpy
    guarantees 16): vector loads then never straddle a cache line, as with `scratch` buffers."""
    dt = np.dtype(dtype)
    n = math.prod(shape)
    raw = np.empty(n * dt.itemsize + align, np.uint8)
    off = -raw.ctypes.data % align
    return raw[off:off + n * dt.itemsize].view(dt).reshape(shape)


def scratch(name: str, shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape` and `dtype` starting on a 64-byte
    boundary, backed by this thread's buffer `name` (valid until its next use of `name`)."""
    dt = np.dtype(dtype)
    n = math.prod(shape) * dt.itemsize
    bufs = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get(name)
    if buf is None or buf.size < n + ALIGN:
        buf = bufs[name] = np.empty(n + ALIGN, np.uint8)
    off = -buf.ctypes.data % ALIGN
    return buf[off:off + n].view(dt).reshape(shape)
