#!/usr/bin/python3
"""band_energy: high-frequency energy in the middle of the overlaps of a tiled level
against the tile centres (the softening that cross-faded textures leave).

    bench/band_energy.py IMAGE TILE OVERLAP [IMAGE2 ...]

Rebuilds the tile grid tessera's plan gives a picture of IMAGE's size (plan.h: n =
ceil((N - O) / (T - O)) tiles at floor(i (N - T) / (n - 1) + 1/2)), takes the 16 px
bands centred on the middle of every overlap and on the centre of every tile, along
both axes, and compares the mean squared high-pass (the picture minus its Gaussian
blur of sigma 1.5 px, all three channels) inside them.  Prints band / centre per
image: 1 means the overlaps carry as much fine detail as the tile centres.  Run it on
a --gram tile and a --gram global render of the same job: the second has no
overlaps, so its figure at the same positions is the baseline of the picture.
Needs numpy and PIL (Debian python3-numpy, python3-pil)."""
import sys

import numpy as np
from PIL import Image


def grid(n, t, o):
    if n <= t:
        return [0]
    k = -(-(n - o) // (t - o))
    return [(i * (n - t) * 2 + (k - 1)) // (2 * (k - 1)) for i in range(k)]


def highpass(a, sigma=1.5):
    r = int(3 * sigma + 0.5)
    x = np.arange(-r, r + 1)
    k = np.exp(-x * x / (2 * sigma * sigma))
    k /= k.sum()
    b = a
    for axis in (0, 1):
        p = [(0, 0)] * 3
        p[axis] = (r, r)
        q = np.pad(b, p, mode="reflect")
        b = sum(k[i] * np.take(q, range(i, i + a.shape[axis]), axis=axis)
                for i in range(len(k)))
    return a - b


def bands(n, t, o):
    xs = grid(n, t, o)
    mids = [(xs[i] + t + xs[i + 1]) // 2 for i in range(len(xs) - 1)]
    cents = [x + t // 2 for x in xs]
    return mids, cents


def energy(e2, axis, centres):
    if not centres:
        return float("nan")
    m = e2.mean(axis=0) if axis == 0 else e2.mean(axis=1)  # per column / row
    return float(np.mean([m[max(c - 8, 0):c + 8].mean() for c in centres]))


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    t, o = int(sys.argv[2]), int(sys.argv[3])
    for path in [sys.argv[1]] + sys.argv[4:]:
        a = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0
        e2 = (highpass(a) ** 2).sum(axis=2)  # [h, w]
        h, w = e2.shape
        ratios = []
        for axis, n in ((0, w), (1, h)):
            mids, cents = bands(n, t, o)
            if mids:
                ratios.append(energy(e2, axis, mids) / energy(e2, axis, cents))
        print("%s: %dx%d, overlap middles / tile centres, high-frequency energy %.3f"
              % (path, w, h, float(np.mean(ratios)) if ratios else float("nan")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
