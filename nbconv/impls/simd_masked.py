"""Masked stores of a register tile (see `simd`): the right edge of an output whose rows are
not whole tiles wide, written straight from the registers with no spill buffer or scalar loop.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import SOURCE_HASH as _SIMD_HASH
from .simd import _data, _sizes, _splat, _tile_ptr, _vec, _vptr

# kernels close over this (as over simd.SOURCE_HASH): an edit here or in simd recompiles them
SOURCE_HASH = hashlib.sha1(Path(__file__).read_bytes() + _SIMD_HASH.encode()).hexdigest()


@intrinsic
def tile_store_cols(typingctx, tile, wb, fb, y, yoff, ystep, rows, cols):
    """y.flat[yoff + i*ystep + j] = tile[i, j] for rows i < rows and columns j < cols (cols <=
    fb); nothing else of y is read or written."""
    sizes = _sizes(wb, fb, y.dtype)
    if sizes is None or not isinstance(cols, types.Integer):
        return None
    WB, FB = sizes

    def codegen(context, builder, sig, args):
        t, _, _, ya, yo, ys, nr, nc = args
        vty = _vec(context, y.dtype)
        L = vty.count
        ity = ir.IntType(64)
        yp = _data(context, builder, y, ya)
        ncv = _splat(builder, builder.sext(nc, ity) if nc.type.width < 64 else nc, ir.VectorType(ity, L))
        bits = 32 if isinstance(vty.element, ir.FloatType) else 64
        iota = [ir.Constant(ir.VectorType(ity, L), list(range(v * L, v * L + L))) for v in range(FB // L)]
        masks = [builder.icmp_signed("<", col, ncv) for col in iota]
        ptr_ty = _vptr(builder, yp, yo, vty).type
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, ptr_ty, ir.IntType(32), masks[0].type]),
            f"llvm.masked.store.v{L}f{bits}.p0")
        for i in range(WB):
            with builder.if_then(builder.icmp_signed(">", nr, nr.type(i)), likely=True):
                base = builder.add(yo, builder.mul(ys, ys.type(i)))
                for v in range(FB // L):
                    val = builder.load(_tile_ptr(builder, t, i, FB, v, vty), align=1)
                    ptr = _vptr(builder, yp, builder.add(base, base.type(v * L)), vty)
                    builder.call(fn, [val, ptr, ir.Constant(ir.IntType(32), 1), masks[v]])
        return context.get_dummy_value()
    return types.void(tile, wb, fb, y, yoff, ystep, rows, cols), codegen
