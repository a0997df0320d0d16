"""Register-tile steps for grouped convolution with few channels per group (ResNeXt: 4-8).

A vector of output channels then spans several groups, and each group reads its own input
channels, so `simd`'s broadcast of one input value per step does not apply. `tile_fma_groups`
loads the input channels of all the vector's groups at once (one vector load of a pixel) and
spreads input channel i of each group over that group's lanes with a constant shuffle (one
shuffle per step): every lane does useful work. Along a row at stride 1 a loaded and shuffled
input column serves every tap of the row (`taps`), as `simd.tile_fma_run` does for depthwise.
`tile_store_runs` writes a tile whose columns run over a flat plane with a row pitch wider
than the output row (the channels_first kernel): masked stores skip the pitch's extra columns.
Same conventions as `simd`: literal sizes, flat element offsets, no bounds checks.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .simd import _data, _fma, _lit, _sizes, _tile_ptr, _vec, _vptr, lanes

SOURCE_HASH = hashlib.sha1(Path(__file__).read_bytes()).hexdigest()


def group_span(lane: int, cg: int, fg: int) -> int:
    """Input channels read by one vector of `lane` output channels: lane // fg groups of cg."""
    return lane // fg * cg


def group_mask(lane: int, cg: int, fg: int) -> list:
    """The shuffle that puts the first input channel of lane l's group (of the span's
    channels) in lane l; from a span loaded i channels later, input channel i."""
    return [(lane_ // fg) * cg for lane_ in range(lane)]


@intrinsic
def tile_fma_groups(typingctx, tile, wb, fb, taps, cg, fg, x, xoff, xstep, w, woff, wstep, lo, hi):
    """One input channel of every group: for input columns c in [lo, hi) of
    0 <= c < wb + taps - 1, with X_c the group span at x.flat[xoff + c*xstep:] (xoff: the
    span's start plus the channel), tile[c - j, :] += shuffle(X_c) * w.flat[woff + j*wstep:+fb]
    for taps j with 0 <= c - j < wb. fb is one vector (a multiple of fg). The span is read
    only up to the channel of its last group (a masked load): nothing past the array."""
    sizes = _sizes(wb, fb, x.dtype)
    T, CG, FG = _lit(taps), _lit(cg), _lit(fg)
    if sizes is None or None in (T, CG, FG) or w.dtype != x.dtype:
        return None
    WB, FB = sizes
    if lanes(x.dtype.bitwidth // 8) != FB or FB % FG or T < 1:
        return None
    ncol = WB + T - 1

    def codegen(context, builder, sig, args):
        t, _, _, _, _, _, xa, xo, xs, wa, wo, ws, lo_, hi_ = args
        vty = _vec(context, x.dtype)
        span = group_span(FB, CG, FG)
        sty = ir.VectorType(vty.element, span)
        used = span - CG + 1
        mask = ir.Constant(ir.VectorType(ir.IntType(32), FB), group_mask(FB, CG, FG))
        xp = _data(context, builder, x, xa)
        wp = _data(context, builder, w, wa)
        wv = [builder.load(_vptr(builder, wp, builder.add(wo, builder.mul(ws, ws.type(j))), vty), align=1)
              for j in range(T)]
        for c in range(ncol):
            cc = lo_.type(c)
            inside = builder.and_(builder.icmp_signed("<=", lo_, cc), builder.icmp_signed(">", hi_, cc))
            with builder.if_then(inside, likely=True):
                base = builder.add(xo, builder.mul(xs, xs.type(c)))
                xv = _masked_load(builder, _vptr(builder, xp, base, sty), used)
                xi = builder.shuffle_vector(xv, ir.Constant(sty, ir.Undefined), mask)
                for j in range(T):
                    r = c - j
                    if 0 <= r < WB:
                        ap = _tile_ptr(builder, t, r, FB, 0, vty)
                        builder.store(_fma(builder, xi, wv[j], builder.load(ap, align=1)), ap, align=1)
        return context.get_dummy_value()
    return types.void(tile, wb, fb, taps, cg, fg, x, xoff, xstep, w, woff, wstep, lo, hi), codegen


def _masked_load(builder, ptr, used):
    """The vector at ptr with only its first `used` lanes read (the others undefined)."""
    vty = ptr.type.pointee
    n = vty.count
    if used >= n:
        return builder.load(ptr, align=1)
    i1 = ir.IntType(1)
    mask = ir.Constant(ir.VectorType(i1, n), [1 if k < used else 0 for k in range(n)])
    bits = 32 if isinstance(vty.element, ir.FloatType) else 64
    fnty = ir.FunctionType(vty, [vty.as_pointer(), ir.IntType(32), mask.type, vty])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{n}f{bits}.p0")
    return builder.call(fn, [ptr, ir.IntType(32)(4), mask, ir.Constant(vty, ir.Undefined)])


def _masked_store(builder, val, ptr, lo, hi):
    """Lanes [lo, hi) of val to ptr[lo:hi] (ptr: a vector pointer); the others untouched."""
    vty = val.type
    n = vty.count
    idx = ir.Constant(ir.VectorType(ir.IntType(32), n), list(range(n)))
    i32 = ir.IntType(32)
    lo32, hi32 = builder.trunc(lo, i32), builder.trunc(hi, i32)
    zeros = ir.Constant(ir.VectorType(i32, n), [0] * n)
    lov = builder.add(zeros, _splat_int(builder, lo32, n))
    hiv = builder.add(zeros, _splat_int(builder, hi32, n))
    mask = builder.and_(builder.icmp_signed("<=", lov, idx), builder.icmp_signed(">", hiv, idx))
    bits = 32 if isinstance(vty.element, ir.FloatType) else 64
    fnty = ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), i32, mask.type])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{n}f{bits}.p0")
    builder.call(fn, [val, ptr, i32(4), mask])


def _splat_int(builder, v, n):
    vt = ir.VectorType(v.type, n)
    e = builder.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(e, ir.Constant(vt, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


@intrinsic
def tile_store_lanes(typingctx, tile, wb, fb, v, y, yoff, ystep, rows, lo, hi):
    """Lanes [lo, hi) of vector v (a literal) of tile rows i < rows to
    y.flat[yoff + i*ystep + lo:yoff + i*ystep + hi] (lane k at yoff + i*ystep + k)."""
    sizes = _sizes(wb, fb, y.dtype)
    V = _lit(v)
    if sizes is None or V is None:
        return None
    WB, FB = sizes

    def codegen(context, builder, sig, args):
        t, _, _, _, ya, yo, ys, nr, lo_, hi_ = args
        vty = _vec(context, y.dtype)
        yp = _data(context, builder, y, ya)
        for i in range(WB):
            with builder.if_then(builder.icmp_signed(">", nr, nr.type(i)), likely=True):
                val = builder.load(_tile_ptr(builder, t, i, FB, V, vty), align=1)
                base = builder.add(yo, builder.mul(ys, ys.type(i)))
                _masked_store(builder, val, _vptr(builder, yp, base, vty), lo_, hi_)
        return context.get_dummy_value()
    return types.void(tile, wb, fb, v, y, yoff, ystep, rows, lo, hi), codegen
