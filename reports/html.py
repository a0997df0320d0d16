"""One self-contained HTML page (inline CSS, no scripts, no network): header, figures, tables.
It references only files written next to it: figures/*.png and the CSV files."""
from __future__ import annotations

import html

import pandas as pd

CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.meta td { text-align: left; } .note { color: #555; font-size: 0.9em; }
"""

CAPTIONS = {
    "reference_shapes": ("Reference shapes",
                         "Each implementation's best configuration on the reference Conv2D shapes "
                         "(GFLOP/s = Problem.flops() / median seconds; a multiply-add counts 2), the "
                         "tuned layer path (what a layer call gets), and PyTorch's conv2d in both memory "
                         "formats when torch is installed. Error bars: the interquartile range of the "
                         "samples. Candidates' bars are the tuner database's timings where it has them; "
                         "the tuned path and PyTorch are timed in this run, in turns."),
    "peak_fraction": ("Fraction of the machine's peak",
                      "GFLOP/s as % of the numpy sgemm peak measured in this run (the better of a "
                      "measurement before and after the sweep). Above 100 %: the peak measurement "
                      "met a busier machine than that shape's timing did. Error bars: interquartile "
                      "range of the shape's samples (the peak's own spread is in the header)."),
    "kernel_sweep": ("Kernel size × stride × data format",
                     "Every conv implementation (its first configuration) at a small size; error "
                     "bars: interquartile range of the samples."),
    "pool_sweep": ("Pooling",
                   "GB/s = (input + output bytes) / median seconds, against the copy bandwidth "
                   "measured in this run; error bars: interquartile range of the samples."),
}


def _table(df: pd.DataFrame, floatfmt="{:.3g}") -> str:
    return df.to_html(index=False, border=0, na_rep="", float_format=floatfmt.format, escape=True)


def render(meta: dict, anchors: dict, sections: list, files: list[str], notes: list[str]) -> str:
    """`sections`: in page order, ("figure", name, relative path) or ("table", title, DataFrame);
    `files`: relative paths of the raw data files to link."""
    e = html.escape
    thr = ", ".join(f"{k} {v}" for k, v in meta["threads"].items())
    ver = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    head = [
        ("Machine", meta["machine"]), ("Threads", thr), ("Versions", ver), ("Date", meta["date"]),
        ("sgemm peak", f"{anchors['sgemm_gflops']:.1f} GFLOP/s ±{100 * anchors.get('sgemm_spread', 0):.1f} % "
                       f"({anchors.get('sgemm_what', 'numpy sgemm')}, median of the tuner's loop, the better "
                       f"of before and after the sweep; {anchors['source']})"),
        ("Copy bandwidth",
         f"{anchors['copy_gbps']:.1f} GB/s ±{100 * anchors.get('copy_spread', 0):.1f} % "
         f"({anchors.get('copy_what', 'np.copyto')}, read + write, measured in this run)"),
    ]
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           "<title>nbconv performance report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>nbconv performance report</h1>", "<table class='meta'>"]
    out += [f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in head]
    out.append("</table>")
    if notes:
        out.append("<ul class='note'>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    for kind, name, item in sections:
        if kind == "figure":
            title, caption = CAPTIONS.get(name, (name, ""))
            if name.startswith("asv:"):
                title, caption = (f"asv: {name[4:]}", "Time per call from the saved asv run (lower is "
                                  "better); error bars: asv's interquartile range where it saved one.")
            out += [f"<h2>{e(title)}</h2>", f"<p class='note'>{e(caption)}</p>",
                    f"<img src='{e(item)}' alt='{e(title)}'>"]
        else:
            out += [f"<h3>{e(name)}</h3>", _table(item)]
    out.append("<h2>Raw data</h2><ul>")
    out += [f"<li><a href='{e(f)}'>{e(f)}</a></li>" for f in files]
    out.append("</ul></body></html>")
    return "\n".join(out)
