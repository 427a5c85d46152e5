#!/usr/bin/python3
"""torch_ref: PyTorch's time for one forward + backward pass of the style objective,
the reference that tessera's conv engine is measured against (DESIGN.md,
"Performance model").

Full-width VGG-19 (torchvision layout, random init, no download), max pooling
replaced by average pooling as for synthesis, truncated after relu5_1
(features[:30]).  Objective: Gram style losses on relu1_1..relu5_1 and a content
loss on relu4_2, against fixed targets from a second random image, so the backward
pass runs through the whole truncated network.  The gradient is taken with respect
to the input only: every weight has requires_grad False.

Timed per pass: normalize, forward, losses, backward (input gradient).  One
untimed warm-up pass, then --repeat passes; each is printed, and the LAST line is
"median_s <seconds>".  Each repetition also prints cpu/wall: close to --threads on
an idle machine, lower when other processes took the cores; such a repetition is
printed as "try" and timed again (--clean, up to 4 * --repeat tries in all).

    /usr/bin/python3 bench/torch_ref.py --size 512 --threads 2 --repeat 5
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision

STYLE = [1, 6, 11, 20, 29]      # relu1_1 relu2_1 relu3_1 relu4_1 relu5_1 (features index)
CONTENT = [22]                  # relu4_2
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def build_net():
    try:
        vgg = torchvision.models.vgg19(weights=None)
    except TypeError:           # torchvision before 0.13
        vgg = torchvision.models.vgg19(pretrained=False)
    feats = vgg.features[:30]   # up to relu5_1
    for i, m in enumerate(feats):
        if isinstance(m, nn.MaxPool2d):
            feats[i] = nn.AvgPool2d(kernel_size=2, stride=2)
    feats.eval()
    for p in feats.parameters():
        p.requires_grad_(False)
    return feats


def taps(net, x):
    """{features index: activation} for the style and content layers."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    h = (x - mean) / std
    want = set(STYLE + CONTENT)
    out = {}
    for i, m in enumerate(net):
        h = m(h)
        if i in want:
            # torchvision's ReLUs are in place, but the next layer is a conv, which
            # never writes its input: the tapped tensor stays valid.
            out[i] = h
    return out


def gram(f):
    _, c, h, w = f.shape
    m = f.reshape(c, h * w)
    return m @ m.t() / (c * h * w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="image side in pixels")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--repeat", type=int, default=5, help="timed passes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clean", type=float, default=0.95,
                    help="redo a repetition whose cpu/wall is below this fraction of "
                         "the threads (machine busy); 0 keeps every repetition")
    args = ap.parse_args()
    if args.size < 16 or args.repeat < 1 or args.threads < 1:
        ap.error("need --size >= 16, --repeat >= 1, --threads >= 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = build_net()

    n = args.size
    with torch.no_grad():       # fixed random targets, not timed
        t = taps(net, torch.rand(1, 3, n, n))
        style_t = {i: gram(t[i]).clone() for i in STYLE}
        content_t = {i: t[i].clone() for i in CONTENT}
        del t
    x = torch.rand(1, 3, n, n).requires_grad_(True)

    def one_pass():
        x.grad = None
        f = taps(net, x)
        loss = sum(((f[i] - content_t[i]) ** 2).mean() for i in CONTENT)
        loss = loss + 1e3 * sum(((gram(f[i]) - style_t[i]) ** 2).mean() for i in STYLE)
        loss.backward()
        return loss.item()

    print("torch %s torchvision %s, %d threads, %dx%d, VGG-19 to relu5_1 (avg pool), "
          "input gradient only" % (torch.__version__, torchvision.__version__,
                                   torch.get_num_threads(), n, n))
    t0 = time.perf_counter()
    one_pass()
    print("warmup_s %.3f" % (time.perf_counter() - t0))
    # On a shared machine a repetition whose cores were taken by others is timed
    # again: cpu/wall below --clean * threads marks it.  At most 4 * repeat tries.
    want = args.clean * min(torch.get_num_threads(), os.cpu_count() or 1)
    times, busy, tries = [], [], 0
    while len(times) < args.repeat and tries < 4 * args.repeat:
        tries += 1
        c0, t0 = time.process_time(), time.perf_counter()
        one_pass()
        dt = time.perf_counter() - t0
        ratio = (time.process_time() - c0) / dt
        if ratio < want:
            print("try %d s %.3f cpu/wall %.2f (machine busy, repeated)" % (tries, dt, ratio))
            busy.append(dt)
            continue
        times.append(dt)
        print("rep %d s %.3f cpu/wall %.2f" % (len(times), dt, ratio))
    if len(times) < args.repeat:
        print("warning: only %d clean repetitions in %d tries%s" % (
            len(times), tries, "" if times else "; median of the busy ones"))
        if not times:
            times = busy
    assert x.grad is not None and torch.isfinite(x.grad).all()
    print("median_s %.3f" % statistics.median(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
