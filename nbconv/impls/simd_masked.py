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


@intrinsic
def copy_vector(typingctx, dst, doff, src, soff, n):
    """dst.flat[doff + j] = src.flat[soff + j] for j < min(n, LANES): one masked vector load and
    store, so a short run (a row of a small plane) needs no scalar remainder loop."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype
            and isinstance(dst.dtype, types.Float) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        da, do, sa, so, nn = args
        vty = _vec(context, dst.dtype)
        L = vty.count
        ity = ir.IntType(64)
        mask = builder.icmp_signed("<", ir.Constant(ir.VectorType(ity, L), list(range(L))),
                                   _splat(builder, nn, ir.VectorType(ity, L)))
        bits = 32 if isinstance(vty.element, ir.FloatType) else 64
        sp = _vptr(builder, _data(context, builder, src, sa), so, vty)
        dp = _vptr(builder, _data(context, builder, dst, da), do, vty)
        load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [sp.type, ir.IntType(32), mask.type, vty]),
            f"llvm.masked.load.v{L}f{bits}.p0")
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, dp.type, ir.IntType(32), mask.type]),
            f"llvm.masked.store.v{L}f{bits}.p0")
        val = builder.call(load, [sp, ir.Constant(ir.IntType(32), 1), mask, ir.Constant(vty, ir.Undefined)])
        builder.call(store, [val, dp, ir.Constant(ir.IntType(32), 1), mask])
        return context.get_dummy_value()
    return types.void(dst, doff, src, soff, n), codegen


@intrinsic
def lanes_of(typingctx, a):
    """The number of a's elements in one vector (a compile-time constant)."""
    if not (isinstance(a, types.Array) and isinstance(a.dtype, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), _vec(context, a.dtype).count)
    return types.int64(a), codegen


@intrinsic
def split_vector2(typingctx, dst, d0, d1, src, soff, n):
    """For j < min(n, 2*LANES): dst.flat[d0 + j//2] = src.flat[soff + j] for even j, and
    dst.flat[d1 + j//2] for odd j: two masked vector loads, two shuffles, two masked stores, so a
    stride-2 row splits into its column phases with no scalar loop."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.dtype == src.dtype
            and isinstance(dst.dtype, types.Float) and isinstance(n, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        da, o0, o1, sa, so, nn = args
        vty = _vec(context, dst.dtype)
        L = vty.count
        ity = ir.IntType(64)
        vi = ir.VectorType(ity, L)
        bits = 32 if isinstance(vty.element, ir.FloatType) else 64
        sp, dp = _data(context, builder, src, sa), _data(context, builder, dst, da)
        mtype = ir.VectorType(ir.IntType(1), L)
        pty = _vptr(builder, sp, so, vty).type
        load = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [pty, ir.IntType(32), mtype, vty]),
            f"llvm.masked.load.v{L}f{bits}.p0")
        store = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [vty, pty, ir.IntType(32), mtype]),
            f"llvm.masked.store.v{L}f{bits}.p0")
        nv = _splat(builder, nn, vi)

        def below(first, step):        # lanes k with first + k*step < n
            return builder.icmp_signed("<", ir.Constant(vi, [first + k * step for k in range(L)]), nv)
        one = ir.Constant(ir.IntType(32), 1)
        undef = ir.Constant(vty, ir.Undefined)
        lo = builder.call(load, [_vptr(builder, sp, so, vty), one, below(0, 1), undef])
        hp = _vptr(builder, sp, builder.add(so, so.type(L)), vty)
        hi = builder.call(load, [hp, one, below(L, 1), undef])
        vi32 = ir.VectorType(ir.IntType(32), L)
        even = builder.shuffle_vector(lo, hi, ir.Constant(vi32, [2 * k for k in range(L)]))
        odd = builder.shuffle_vector(lo, hi, ir.Constant(vi32, [2 * k + 1 for k in range(L)]))
        builder.call(store, [even, _vptr(builder, dp, o0, vty), one, below(0, 2)])
        builder.call(store, [odd, _vptr(builder, dp, o1, vty), one, below(1, 2)])
        return context.get_dummy_value()
    return types.void(dst, d0, d1, src, soff, n), codegen
