"""The Problems every CUDA kernel x config is checked on (device "cuda").

SIM: simulator-friendly (a few hundred threads, <= ~100k multiply-adds each), chosen for edge
tiles that are not multiples of the tile sizes (M, F and K all ragged), stride, dilation, every
padding, groups and depthwise, both data formats, batch 1 and 2, ranks 1-3.
GPU: the same kinds at realistic sizes (only run where a GPU is, marker `requires_gpu`).
"""
from __future__ import annotations

from nbconv.spec import make_problem


def conv(shape, k, f, *, rank=2, layout="channels_last", **kw):
    return make_problem("conv", shape, rank=rank, kernel=(k,) * rank if isinstance(k, int) else k,
                        out_channels=f, layout=layout, device="cuda", **kw)


def pool(op, shape, k, *, rank=2, layout="channels_last", **kw):
    return make_problem(op, shape, rank=rank, kernel=(k,) * rank if isinstance(k, int) else k,
                        layout=layout, device="cuda", **kw)


def local(shape, k, f, *, rank=2, layout="channels_last", **kw):
    return make_problem("local", shape, rank=rank, kernel=(k,) * rank if isinstance(k, int) else k,
                        out_channels=f, layout=layout, device="cuda", **kw)


CF = "channels_first"
SIM = {
    "conv": {
        "r2_same_n2": conv((2, 6, 5, 3), 3, 5, padding="same"),
        "r2_3x3_valid_odd": conv((1, 7, 8, 2), 3, 3),                          # 5x6 output
        "r2_3x3_explicit": conv((2, 5, 6, 3), 3, 4, padding=((2, 0), (1, 1))),
        "r2_1x1_wide": conv((1, 9, 9, 5), 1, 40),                              # 3x2 tiles of 32
        "r1_causal_dil2": conv((2, 11, 2), 3, 3, rank=1, dilation=(2,), padding="causal"),
        "r3_st_dil": conv((1, 3, 4, 5, 2), (2, 2, 3), 3, rank=3, strides=(1, 1, 2), dilation=(1, 2, 1)),
        "r2_nchw_g2_st": conv((1, 4, 7, 6), (3, 2), 6, layout=CF, groups=2, strides=(2, 1),
                              padding=((1, 0), (0, 1))),
        "r2_depthwise_x2": conv((2, 5, 5, 4), 3, 8, groups=4, padding="same"),
        "r3_ncdhw_same": conv((2, 2, 3, 3, 4), 2, 2, rank=3, layout=CF, padding="same"),
        "r1_ncw_st3": conv((1, 3, 9), 3, 4, rank=1, layout=CF, strides=(3,), padding=((2, 1),)),
    },
    "maxpool": {
        "r2_same_st2": pool("maxpool", (2, 6, 7, 3), 3, strides=(2, 2), padding="same"),
        "r2_nchw": pool("maxpool", (1, 4, 5, 5), 2, layout=CF, strides=(2, 2)),
        "r1_st1": pool("maxpool", (2, 8, 3), 3, rank=1, strides=(1,)),
        "r3_ncdhw": pool("maxpool", (1, 2, 4, 4, 4), 2, rank=3, layout=CF, strides=(2, 2, 2)),
    },
    "local": {
        "r2_valid_n2": local((2, 5, 5, 3), 3, 4, strides=(1, 1)),
        "r1_ncw_same": local((1, 2, 8), 3, 3, rank=1, layout=CF, strides=(2,), padding="same"),
        "r2_nchw_st2": local((1, 2, 4, 5), 2, 2, layout=CF, strides=(2, 2)),
    },
}
SIM["avgpool"] = {name: p.with_(op="avgpool") for name, p in SIM["maxpool"].items()}

GPU = {
    "conv": {
        "resnet_3x3": conv((8, 56, 56, 64), 3, 64, padding="same"),
        "pointwise": conv((8, 28, 28, 256), 1, 128),
        "strided_7x7": conv((4, 112, 112, 3), 7, 64, strides=(2, 2), padding="same"),
        "nchw_grouped": conv((4, 64, 28, 28), 3, 64, layout=CF, groups=4, padding="same"),
        "depthwise": conv((8, 56, 56, 64), 3, 64, groups=64, padding="same"),
    },
    "maxpool": {"pool_3x3": pool("maxpool", (8, 56, 56, 64), 3, strides=(2, 2), padding="same")},
    "local": {"local_3x3": local((4, 16, 16, 16), 3, 16)},
}
GPU["avgpool"] = {name: p.with_(op="avgpool") for name, p in GPU["maxpool"].items()}
