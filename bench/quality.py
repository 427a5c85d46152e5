#!/usr/bin/python3
"""quality: the four picture-quality figures of issue 17 for one render.

    bench/quality.py measure LABEL PAIR CONTENT STYLE SINGLE.png REPORT.json [TILED.png]
        prints one JSON line of figures (append them to a file)
    bench/quality.py table FILE.jsonl
        prints the figures of every PAIR, one column per LABEL (before / after);
        where a LABEL and PAIR have several lines (renders with other networks,
        $SEED), their mean, and for the frame +-half the range between them

Figures (the images as 8-bit RGB; content and style resized to the output's size
with PIL's bicubic filter, the style to the output's long side):

  speckle   colour / luma high-frequency ratio: E(Cb) + E(Cr) over E(Y), where E is
            the mean square of the channel minus its Gaussian blur (sigma 1.5 px,
            reflected edges), YCbCr of BT.601; printed as the output's ratio over
            the larger of the content's and the style's (goal: at most 3)
  mean,cov  distance of the output's mean colour (RGB in [0,1]) and of its 3x3 colour
            covariance (Frobenius) to the style's, over the content's distance to the
            style's (goal: below 1)
  style     the style loss of the last iteration in REPORT.json (unit layer
            weights, the objective the report prints)
  nyquist   energy of the 2-px column pattern: per row and channel the square of
            the alternating sum sum_j (-1)^j x_ij over the width, averaged; the
            tiled render's over the single piece's (goal: at most 2); without
            TILED the single piece's over the content's
  frame     per side (top, bottom, left, right): the mean luma (0..255) of the
            outermost 8 rows (columns) minus that of the next 32, output's minus
            content's (goal: within 5 grey levels); 'interior lines' is the same
            figure at lines inside the picture (rms): where it is large the output
            does not follow the content's brightness anywhere, and no side can be
            within 5 of it however the borders are treated
"""
import json
import os
import sys

import numpy as np
from PIL import Image


def load(path, size=None):
    im = Image.open(path).convert("RGB")
    if size is not None and im.size != size:
        im = im.resize(size, Image.BICUBIC)
    return np.asarray(im).astype(np.float64)


def load_long(path, long_side):
    im = Image.open(path).convert("RGB")
    s = long_side / max(im.size)
    size = (max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s)))
    return np.asarray(im.resize(size, Image.BICUBIC)).astype(np.float64)


def ycbcr(a):
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return y, cb, cr


def blur(a, sigma=1.5):
    r = int(3 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    b = a
    for axis in (0, 1):
        p = [(0, 0)] * 2
        p[axis] = (r, r)
        q = np.pad(b, p, mode="reflect")
        b = sum(k[i] * np.take(q, range(i, i + a.shape[axis]), axis=axis)
                for i in range(len(k)))
    return b


def hf(ch):
    return float(np.mean((ch - blur(ch)) ** 2))


def speckle(a):
    y, cb, cr = ycbcr(a)
    return (hf(cb) + hf(cr)) / hf(y)


def colour_stats(a):
    p = a.reshape(-1, 3) / 255.0
    return p.mean(axis=0), np.cov(p, rowvar=False)


def nyquist(a):
    w = a.shape[1] - a.shape[1] % 2
    s = np.where(np.arange(w) % 2 == 0, 1.0, -1.0)
    alt = np.einsum("hwc,w->hc", a[:, :w, :] / 255.0, s)
    return float(np.mean(alt ** 2) / w)


def frame(a):
    y = ycbcr(a)[0]
    sides = {"top": y, "bottom": y[::-1], "left": y.T, "right": y.T[::-1]}
    return {k: float(v[:8].mean() - v[8:40].mean()) for k, v in sides.items()}


def frame_floor(out, content):
    """The frame's figure at lines inside the picture (every 8 px, 40 px or more from
    the borders, both directions, rows and columns), output minus content: its rms is
    what the figure reads where there is no border, the floor of the frame figure when
    the output does not follow the content's brightness."""
    yo, yc = ycbcr(out)[0], ycbcr(content)[0]
    vals = []
    for a, b in ((yo, yc), (yo[::-1], yc[::-1]), (yo.T, yc.T), (yo.T[::-1], yc.T[::-1])):
        for r in range(40, a.shape[0] - 80, 8):
            fa = a[r:r + 8].mean() - a[r + 8:r + 40].mean()
            fb = b[r:r + 8].mean() - b[r + 8:r + 40].mean()
            vals.append(fa - fb)
    return float(np.sqrt(np.mean(np.square(vals)))) if vals else float("nan")


def measure(label, pair, content_path, style_path, out_path, report_path, tiled_path):
    out = load(out_path)
    h, w = out.shape[:2]
    content = load(content_path, (w, h))
    style = load_long(style_path, max(w, h))
    f = {"label": label, "pair": pair, "size": "%dx%d" % (w, h)}
    if os.environ.get("SEED", "-") != "-":
        f["seed"] = int(os.environ["SEED"])
    s_out, s_c, s_s = speckle(out), speckle(content), speckle(style)
    f["speckle_out"], f["speckle_content"], f["speckle_style"] = s_out, s_c, s_s
    f["speckle"] = s_out / max(s_c, s_s)
    mo, co = colour_stats(out)
    mc, cc = colour_stats(content)
    ms, cs = colour_stats(style)
    f["mean"] = float(np.linalg.norm(mo - ms) / np.linalg.norm(mc - ms))
    f["cov"] = float(np.linalg.norm(co - cs) / np.linalg.norm(cc - cs))
    with open(report_path) as fp:
        rep = json.load(fp)
    its = rep.get("iterations") or []
    f["style"] = its[-1]["style"] if its else float("nan")
    f["iterations"] = its[-1]["iteration"] if its else 0
    f["seconds"] = rep.get("seconds", float("nan"))
    if tiled_path:
        f["nyquist"] = nyquist(load(tiled_path)) / nyquist(out)
    else:
        f["nyquist"] = nyquist(out) / nyquist(content)
    fo, fc = frame(out), frame(content)
    for k in fo:
        f["frame_" + k] = fo[k] - fc[k]
    f["frame_floor"] = frame_floor(out, content)
    print(json.dumps(f))


ROWS = [
    ("speckle", "speckle out/max(content,style)  (<=3)", "%.2f"),
    ("speckle_out", "  output's colour/luma HF ratio", "%.3f"),
    ("mean", "mean colour: out->style / content->style (<1)", "%.2f"),
    ("cov", "colour cov: out->style / content->style (<1)", "%.2f"),
    ("style", "style loss at the last iteration", "%.3g"),
    ("nyquist", "Nyquist tiled / single piece (<=2)", "%.2f"),
    ("frame_top", "frame top (out - content, grey levels)", "%+.1f"),
    ("frame_bottom", "frame bottom", "%+.1f"),
    ("frame_left", "frame left", "%+.1f"),
    ("frame_right", "frame right", "%+.1f"),
    ("frame_floor", "  the same at interior lines (rms)", "%.1f"),
    ("seconds", "seconds of the single render", "%.1f"),
]


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    labels, pairs = [], []
    for r in rows:
        if r["label"] not in labels:
            labels.append(r["label"])
        if r["pair"] not in pairs:
            pairs.append(r["pair"])
    by = {}
    for r in rows:
        by.setdefault((r["label"], r["pair"]), []).append(r)
    for p in pairs:
        any_r = next(r for r in rows if r["pair"] == p)
        seeds = sorted({r["seed"] for r in rows if r["pair"] == p and "seed" in r})
        print("%s (%s, %d iterations; content %.3f style %.3f colour/luma HF%s)"
              % (p, any_r["size"], any_r["iterations"], any_r["speckle_content"],
                 any_r["speckle_style"],
                 "; mean of builtin seeds " + ",".join(map(str, seeds)) if seeds else ""))
        print("  %-48s" % "" + "".join("%12s" % l for l in labels))
        for key, name, fmt in ROWS:
            vals = []
            for l in labels:
                v = [r[key] for r in by.get((l, p), []) if key in r]
                if not v:
                    vals.append("-")
                    continue
                cell = fmt % (sum(v) / len(v))
                if len(v) > 1 and key.startswith("frame_") and key != "frame_floor":
                    cell += "+-%.0f" % ((max(v) - min(v)) / 2)
                vals.append(cell)
            print("  %-48s" % name + "".join("%12s" % v for v in vals))
        print()


def main():
    if len(sys.argv) >= 8 and sys.argv[1] == "measure":
        measure(*sys.argv[2:8], sys.argv[8] if len(sys.argv) > 8 else None)
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
