"""Register tiles for Numba kernels: a (WB, FB) accumulator tile held in vector registers.

Written as loops, a small accumulator tile defeats LLVM: its vectorisers picked the tile's
column axis with gathers, or the reduction loop, and ran about ten times slower than the tile
below on the reference shapes. These intrinsics emit the vector code
directly: the tile is a stack array that LLVM promotes to registers because every access has a
constant offset; loads and stores are unaligned vectors of LANES elements. WB and FB must be
compile-time constants (closure variables of the kernel factory) and FB a multiple of LANES.
Arrays are passed whole and addressed by flat element offsets with no bounds checks: the
callers guarantee the offsets.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# 64-byte vectors where the CPU has AVX-512 (measured 10-40 % faster than 32-byte ones on the
# reference shapes), 32 bytes otherwise (LLVM splits them further where needed).
VECTOR_BYTES = 64 if llvm.get_host_cpu_features().get("avx512f", False) else 32


# Numba's cache keys a kernel on its own module's source, not on these intrinsics: kernels
# that use them close over this hash, so an edit here recompiles them.
SOURCE_HASH = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()


def lanes(itemsize: int) -> int:
    return VECTOR_BYTES // itemsize


def _lit(t):
    return t.literal_value if isinstance(t, types.IntegerLiteral) else None


def _sizes(wb, fb, dtype):
    """(WB, FB) when both are literals and FB fills whole vectors of dtype, else None."""
    wb_, fb_ = _lit(wb), _lit(fb)
    if wb_ is None or fb_ is None or not isinstance(dtype, types.Float) or fb_ % lanes(dtype.bitwidth // 8):
        return None
    return wb_, fb_


def _vec(context, dtype):
    return ir.VectorType(context.get_value_type(dtype), lanes(dtype.bitwidth // 8))


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data


def _vptr(builder, base, off, vty):
    return builder.bitcast(builder.gep(base, [off]), vty.as_pointer())


def _vload(builder, base, off, k, vty):
    """The vector at element offset off + k (k a Python int) of base."""
    return builder.load(_vptr(builder, base, builder.add(off, off.type(k)), vty), align=1)


def _tile_ptr(builder, tile, i, fb, v, vty):
    return _vptr(builder, tile, ir.Constant(ir.IntType(64), i * fb + v * vty.count), vty)


def _splat(builder, x, vty):
    v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [0] * vty.count)
    return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined), zeros)


def _fma(builder, a, b, c):
    t = a.type
    bits = 32 if isinstance(t.element, ir.FloatType) else 64
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t, t, t]),
                                        f"llvm.fma.v{t.count}f{bits}")
    return builder.call(fn, [a, b, c])


@intrinsic
def tile_new(typingctx, wb, fb, like):
    """An uninitialised stack tile of wb x fb elements of like's dtype (a pointer)."""
    sizes = _sizes(wb, fb, getattr(like, "dtype", None))
    if sizes is None:
        return None
    dt = like.dtype

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(dt), size=sizes[0] * sizes[1])
    return types.CPointer(dt)(wb, fb, like), codegen


@intrinsic
def tile_fill(typingctx, tile, wb, fb, src, off):
    """tile[i, :] = src.flat[off:off + fb] for every row i (the bias)."""
    sizes = _sizes(wb, fb, src.dtype)
    if sizes is None:
        return None
    WB, FB = sizes

    def codegen(context, builder, sig, args):
        t, _, _, s, o = args
        vty = _vec(context, src.dtype)
        sp = _data(context, builder, src, s)
        vals = [_vload(builder, sp, o, v * vty.count, vty) for v in range(FB // vty.count)]
        for i in range(WB):
            for v, val in enumerate(vals):
                builder.store(val, _tile_ptr(builder, t, i, FB, v, vty), align=1)
        return context.get_dummy_value()
    return types.void(tile, wb, fb, src, off), codegen


def _update(bcast):
    """tile[i, :] += X_i * w.flat[woff:woff + fb] for rows lo <= i < hi, where X_i is the scalar
    x.flat[xoff + i*xstep] broadcast (bcast: an outer-product step of a convolution) or the
    vector x.flat[xoff + i*xstep:+fb] (elementwise: a depthwise step). With lo=0 and hi=wb as
    literals (a full tile) no row is tested."""
    def typer(typingctx, tile, wb, fb, x, xoff, xstep, w, woff, lo, hi):
        sizes = _sizes(wb, fb, x.dtype)
        if sizes is None or w.dtype != x.dtype:
            return None
        WB, FB = sizes
        full = _lit(lo) == 0 and _lit(hi) == WB

        def codegen(context, builder, sig, args):
            t, _, _, xa, xo, xs, wa, wo, lo_, hi_ = args
            vty = _vec(context, x.dtype)
            L = vty.count
            xp = _data(context, builder, x, xa)
            wp = _data(context, builder, w, wa)
            wv = [_vload(builder, wp, wo, v * L, vty) for v in range(FB // L)]
            for i in range(WB):
                ci = lo_.type(i)
                inside = builder.and_(builder.icmp_signed("<=", lo_, ci), builder.icmp_signed(">", hi_, ci))
                with (_always() if full else builder.if_then(inside, likely=True)):
                    base = builder.add(xo, builder.mul(xs, xs.type(i)))
                    if bcast:
                        xb = _splat(builder, builder.load(builder.gep(xp, [base])), vty)
                    for v in range(FB // L):
                        if not bcast:
                            xb = _vload(builder, xp, base, v * L, vty)
                        ap = _tile_ptr(builder, t, i, FB, v, vty)
                        builder.store(_fma(builder, xb, wv[v], builder.load(ap, align=1)), ap, align=1)
            return context.get_dummy_value()
        return types.void(tile, wb, fb, x, xoff, xstep, w, woff, lo, hi), codegen
    return typer


class _always:
    """Stands in for builder.if_then when no test is needed."""
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


tile_fma_bcast = intrinsic(_update(True))
tile_fma_elem = intrinsic(_update(False))


@intrinsic
def tile_fma_run(typingctx, tile, wb, fb, taps, x, xoff, xstep, w, woff, wstep):
    """Depthwise taps along a row at stride 1: tile[i, :] += sum over j < taps of
    x.flat[xoff + (i + j)*xstep:+fb] * w.flat[woff + j*wstep:+fb], for every row i. Each
    input vector is loaded once for all the (row, tap) pairs that share it: wb + taps - 1
    loads instead of wb * taps."""
    sizes = _sizes(wb, fb, x.dtype)
    T = _lit(taps)
    if sizes is None or T is None or T < 1 or w.dtype != x.dtype:
        return None
    WB, FB = sizes

    def codegen(context, builder, sig, args):
        t, _, _, _, xa, xo, xs, wa, wo, ws = args
        vty = _vec(context, x.dtype)
        L = vty.count
        xp = _data(context, builder, x, xa)
        wp = _data(context, builder, w, wa)
        for v in range(FB // L):
            wv = [_vload(builder, wp, builder.add(wo, builder.mul(ws, ws.type(j))), v * L, vty)
                  for j in range(T)]
            acc = [builder.load(_tile_ptr(builder, t, i, FB, v, vty), align=1) for i in range(WB)]
            for col in range(WB + T - 1):
                xv = _vload(builder, xp, builder.add(xo, builder.mul(xs, xs.type(col))), v * L, vty)
                for j in range(T):
                    i = col - j
                    if 0 <= i < WB:
                        acc[i] = _fma(builder, xv, wv[j], acc[i])
            for i in range(WB):
                builder.store(acc[i], _tile_ptr(builder, t, i, FB, v, vty), align=1)
        return context.get_dummy_value()
    return types.void(tile, wb, fb, taps, x, xoff, xstep, w, woff, wstep), codegen


@intrinsic
def tile_store(typingctx, tile, wb, fb, y, yoff, ystep, rows, stream):
    """y.flat[yoff + i*ystep:+fb] = tile[i, :] for rows i < rows.

    stream (a literal 0 or 1): non-temporal stores, which skip reading the output's lines into
    the cache first; every address must then be a multiple of VECTOR_BYTES (the caller's
    promise: an aligned output and a row length in whole vectors)."""
    sizes = _sizes(wb, fb, y.dtype)
    if sizes is None or _lit(stream) not in (0, 1):
        return None
    WB, FB = sizes
    nt = _lit(stream) == 1

    def codegen(context, builder, sig, args):
        t, _, _, ya, yo, ys, nr, _ = args
        vty = _vec(context, y.dtype)
        L = vty.count
        yp = _data(context, builder, y, ya)
        for i in range(WB):
            with builder.if_then(builder.icmp_signed(">", nr, nr.type(i)), likely=True):
                base = builder.add(yo, builder.mul(ys, ys.type(i)))
                for v in range(FB // L):
                    val = builder.load(_tile_ptr(builder, t, i, FB, v, vty), align=1)
                    ptr = _vptr(builder, yp, builder.add(base, base.type(v * L)), vty)
                    st = builder.store(val, ptr, align=VECTOR_BYTES if nt else 1)
                    if nt:
                        st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()
    return types.void(tile, wb, fb, y, yoff, ystep, rows, stream), codegen
