"""Matplotlib figures (PNG) from the tidy results table. Agg backend: no display needed."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LAYOUT_LABEL = {"channels_last": "channels_last (NHWC)", "channels_first": "channels_first (NCHW)"}
TORCH = ("torch NCHW", "torch channels_last")


def colours(names):
    """One stable colour per implementation name across all figures."""
    cmap = plt.get_cmap("tab10")
    fixed = {"nbconv (tuned)": "black", "torch NCHW": "#c44e52", "torch channels_last": "#dd8452"}
    out, i = {}, 0
    for n in sorted(names):
        if n in fixed:
            out[n] = fixed[n]
        else:
            out[n] = cmap(i % 10)
            i += 1
    return out


def with_band(d, rate="gflops", work="flops"):
    """d plus `lo`/`hi`: the rate at the samples' third and first quartile times (the IQR band
    every figure draws as error bars; zero-width where quartiles are missing)."""
    d = d.copy()
    scale = d[work] / 1e9
    q1 = d["q1_s"] if "q1_s" in d.columns else d["median_s"]
    q3 = d["q3_s"] if "q3_s" in d.columns else d["median_s"]
    d["lo"] = (scale / q3).fillna(d[rate])
    d["hi"] = (scale / q1).fillna(d[rate])
    return d


def _yerr(g, rate):
    return np.vstack([(g[rate] - g["lo"]).clip(lower=0).values, (g["hi"] - g[rate]).clip(lower=0).values])


def best_rows(d):
    """Per (shape, impl), the row of its fastest configuration."""
    return d.loc[d.groupby(["shape", "impl"], sort=False).gflops.idxmax()]


def _save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _facets(n_rows, n_cols, width=5.0, height=3.4):
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False,
                             sharex=True, sharey="row")
    return fig, axes


def kernel_sweep(df, path):
    """GFLOP/s against kernel size, a line per implementation, faceted by stride x data format."""
    d = df[(df.section == "kernel_sweep") & (df.status == "ok")]
    if d.empty:
        return None
    d = with_band(d)
    strides, layouts = sorted(d.stride.unique()), [lay for lay in LAYOUT_LABEL if lay in set(d.layout)]
    col = colours(d.impl.unique())
    fig, axes = _facets(len(strides), len(layouts))
    for i, st in enumerate(strides):
        for j, lay in enumerate(layouts):
            ax = axes[i][j]
            sub = d[(d.stride == st) & (d.layout == lay)]
            for impl, g in sub.groupby("impl"):
                g = g.sort_values("kernel")
                ax.errorbar(g.kernel, g.gflops, yerr=_yerr(g, "gflops"), marker="o", label=impl,
                            color=col[impl], capsize=2)
            ax.set_title(f"stride {st}, {LAYOUT_LABEL[lay]}", fontsize=10)
            ax.set_xticks(sorted(d.kernel.unique()))
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("GFLOP/s")
            if i == len(strides) - 1:
                ax.set_xlabel("kernel size k (k×k)")
    shape = d.iloc[0]
    fig.suptitle(f"Conv2D throughput by kernel size (batch {shape.batch}, {shape.c_in}→{shape.c_out} "
                 f"channels, 'same' padding)", fontsize=11)
    _legend(fig, axes)
    return _save(fig, path)


def _legend(fig, axes):
    handles, labels = {}, []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend([handles[lab] for lab in labels], labels, loc="center left", bbox_to_anchor=(1.0, 0.5),
               title="implementation", fontsize=9)
    fig.tight_layout()


def reference_bars(df, path):
    """Reference shapes: a bar per implementation (its best config), the tuned layer and PyTorch;
    the nbconv/PyTorch ratio above each group. Log scale: direct loops and GEMM differ 100x."""
    d = df[(df.section == "reference") & (df.status == "ok")]
    if d.empty:
        return None
    rows = with_band(best_rows(d))
    shapes = list(dict.fromkeys(d["shape"]))
    best = rows.pivot(index="shape", columns="impl", values="gflops").reindex(shapes)
    lo = rows.pivot(index="shape", columns="impl", values="lo").reindex(shapes)
    hi = rows.pivot(index="shape", columns="impl", values="hi").reindex(shapes)
    impls = [c for c in best.columns if c not in TORCH and c != "nbconv (tuned)"]
    order = impls + [c for c in ("nbconv (tuned)", *TORCH) if c in best.columns]
    col = colours(order)
    # compact groups: only the bars a shape has, centred on it; one legend entry per name
    n_max = int(best[order].notna().sum(axis=1).max())
    width = 0.84 / max(n_max, 1)
    fig, ax = plt.subplots(figsize=(min(18.0, max(10.0, 0.12 * n_max * len(shapes) + 3)), 5.2))
    x = np.arange(len(shapes))
    seen = set()
    for xi, shape in zip(x, shapes, strict=True):
        present = [n for n in order if np.isfinite(best.at[shape, n])]
        for i, name in enumerate(present):
            v = best.at[shape, name]
            err = [[max(v - lo.at[shape, name], 0)], [max(hi.at[shape, name] - v, 0)]]
            ax.bar(xi - width * len(present) / 2 + width * (i + 0.5), v, width, yerr=err,
                   error_kw=dict(lw=0.8, capsize=1.5, ecolor="#444"),
                   color=col[name], hatch="//" if name in TORCH else None, edgecolor="white",
                   linewidth=0.3, label=None if name in seen else name)
            seen.add(name)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_xticks(x)
    ax.set_xticklabels(shapes, rotation=30, ha="right", fontsize=9)
    ax.set_xlim(-0.6, len(shapes) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    torch_cols = [c for c in TORCH if c in best.columns]
    if torch_cols and "nbconv (tuned)" in best.columns:
        ratio = best["nbconv (tuned)"] / best[torch_cols].max(axis=1)
        top = hi[order].max(axis=1)
        for xi, r, t in zip(x, ratio.values, top.values, strict=True):
            if np.isfinite(r):
                ax.annotate(f"×{r:.2f}", (xi, t), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=8)
        ax.set_ylim(top=ax.get_ylim()[1] * 2.0)
        ax.set_title("Reference Conv2D shapes: GFLOP/s per implementation "
                     "(×r above a group = tuned nbconv / best PyTorch)", fontsize=11)
    else:
        ax.set_title("Reference Conv2D shapes: GFLOP/s per implementation", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    by_label = dict(zip(labels, handles, strict=True))
    ax.legend([by_label[n] for n in order if n in by_label], [n for n in order if n in by_label],
              loc="center left", bbox_to_anchor=(1.0, 0.5), title="implementation", fontsize=9)
    return _save(fig, path)


def peak_fraction(df, anchors, path):
    """% of the measured sgemm peak reached on each reference shape: tuned nbconv and PyTorch."""
    d = df[(df.section == "reference") & (df.status == "ok")]
    names = [n for n in ("nbconv (tuned)", *TORCH) if n in set(d.impl)]
    if d.empty or not names:
        return None
    rows = with_band(best_rows(d[d.impl.isin(names)]))
    order = list(dict.fromkeys(d["shape"]))
    pct, lo, hi = (100.0 * rows.pivot(index="shape", columns="impl", values=c).reindex(order)
                   / anchors["sgemm_gflops"] for c in ("gflops", "lo", "hi"))
    col = colours(names)
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(pct) + 1.6))
    y = np.arange(len(pct))
    h = 0.8 / len(names)
    for i, name in enumerate(names):
        err = np.vstack([(pct[name] - lo[name]).clip(lower=0).values,
                         (hi[name] - pct[name]).clip(lower=0).values])
        ax.barh(y - 0.4 + h * (i + 0.5), pct[name].values, h, xerr=err, label=name, color=col[name],
                error_kw=dict(lw=0.8, capsize=1.5, ecolor="#444"),
                hatch="//" if name in TORCH else None, edgecolor="white", linewidth=0.3)
    ax.set_yticks(y)
    ax.set_yticklabels(pct.index, fontsize=9)
    ax.invert_yaxis()
    ax.axvline(100, color="grey", ls="--", lw=1)
    ax.set_xlabel(f"% of measured sgemm peak ({anchors['sgemm_gflops']:.0f} GFLOP/s)")
    ax.set_title("Reference shapes: fraction of the machine's sgemm peak", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    return _save(fig, path)


def pool_sweep(df, anchors, path):
    """Pooling GB/s against pool size, a line per implementation and stride, faceted by op x layout;
    the measured copy bandwidth as a dashed line."""
    d = df[(df.section == "pool_sweep") & (df.status == "ok")]
    if d.empty:
        return None
    d = with_band(d, rate="gbps", work="bytes")
    ops = [o for o in ("maxpool", "avgpool") if o in set(d.op)]
    layouts = [lay for lay in LAYOUT_LABEL if lay in set(d.layout)]
    col = colours(d.impl.unique())
    fig, axes = _facets(len(ops), len(layouts))
    for i, op in enumerate(ops):
        for j, lay in enumerate(layouts):
            ax = axes[i][j]
            sub = d[(d.op == op) & (d.layout == lay)]
            for (impl, st), g in sub.groupby(["impl", "stride"]):
                g = g.sort_values("kernel")
                ax.errorbar(g.kernel, g.gbps, yerr=_yerr(g, "gbps"), marker="o", ls="-" if st == 1 else "--",
                            color=col[impl], capsize=2, label=f"{impl}, stride {st}")
            ax.axhline(anchors["copy_gbps"], color="grey", ls=":", lw=1.2,
                       label=f"copy bandwidth ({anchors['copy_gbps']:.0f} GB/s)")
            ax.set_title(f"{'MaxPooling2D' if op == 'maxpool' else 'AveragePooling2D'}, {LAYOUT_LABEL[lay]}",
                         fontsize=10)
            ax.set_xticks(sorted(d.kernel.unique()))
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("GB/s (input + output bytes / time)")
            if i == len(ops) - 1:
                ax.set_xlabel("pool size k (k×k)")
    r = d.iloc[0]
    fig.suptitle(f"Pooling bandwidth ('same' padding, batch {r.batch}, {r.c_in} channels)", fontsize=11)
    _legend(fig, axes)
    return _save(fig, path)


def all_figures(df, anchors, fig_dir):
    """{name: path} of the figures that had data."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    made = {
        "kernel_sweep": kernel_sweep(df, fig_dir / "kernel_sweep.png"),
        "reference_shapes": reference_bars(df, fig_dir / "reference_shapes.png"),
        "peak_fraction": peak_fraction(df, anchors, fig_dir / "peak_fraction.png"),
        "pool_sweep": pool_sweep(df, anchors, fig_dir / "pool_sweep.png"),
    }
    return {k: v for k, v in made.items() if v is not None}


def asv_times(df, benchmark, info, path):
    """One asv kernel benchmark: ms per call against kernel size, a line per implementation,
    faceted by stride x data format (log scale: implementations differ by orders of magnitude)."""
    need = {"impl", "stride", "layout"}
    d = df[df.benchmark == benchmark] if not df.empty else df
    if d.empty or not need <= set(d.columns):
        return None
    size = "kernel" if "kernel" in d.columns and d["kernel"].notna().any() else "pool_size"
    d = d.dropna(subset=[size])
    if d.empty:
        return None
    strides = sorted(d.stride.dropna().unique())
    layouts = [lay for lay in LAYOUT_LABEL if lay in set(d.layout)]
    col = colours(d.impl.unique())
    fig, axes = _facets(len(strides), len(layouts))
    for i, st in enumerate(strides):
        for j, lay in enumerate(layouts):
            ax = axes[i][j]
            for impl, g in d[(d.stride == st) & (d.layout == lay)].groupby("impl"):
                g = g.sort_values(size)
                yerr = None
                if {"q25", "q75"} <= set(g.columns) and g.q25.notna().all() and g.q75.notna().all():
                    yerr = np.vstack([(g.value - g.q25).clip(lower=0), (g.q75 - g.value).clip(lower=0)]) * 1e3
                ax.errorbar(g[size], g.value * 1e3, yerr=yerr, marker="o", label=impl, color=col[impl],
                            capsize=2)
            ax.set_yscale("log")
            ax.set_title(f"stride {int(st)}, {LAYOUT_LABEL[lay]}", fontsize=10)
            ax.set_xticks(sorted(d[size].unique()))
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("ms per call (log scale)")
            if i == len(strides) - 1:
                ax.set_xlabel(f"{size.replace('_', ' ')} k")
    fig.suptitle(f"asv {benchmark} at commit {info['commit']} ({info['date']}); lower is better",
                 fontsize=11)
    _legend(fig, axes)
    return _save(fig, path)
