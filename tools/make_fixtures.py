#!/usr/bin/python3
"""make_fixtures: the PyTorch reference for tessera's objective (DESIGN.md).

Writes small, deterministic golden fixtures into tests/fixtures/ (see the README
there for every file and its layout):

    narrow_vgg.safetensors   VGG-19 at 1/16 width, random weights, written by hand
    narrow_vgg.pth           its first 8 convolutions as torch.save writes a state dict
    content.png style.png style2.png   synthetic 8-bit RGB images (no photos)
    init.f32                 the point x where the objective is evaluated
    grad_<case>.f32          d total / d x at init, one per case
    targets_<case>.f32       the blended style Gram targets T_l, one per case
    expected.json            settings, per-case loss terms, gradient norms

Everything is computed in float64 from the float32 values that the files hold, so
the numbers are the exact answer for what the C side reads.  No downloads; the
script depends on torch and the standard library only (PNG and safetensors are
written here, not through PIL or the safetensors package).

Regenerate:  /usr/bin/python3 tools/make_fixtures.py [--out tests/fixtures]
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys
import zlib

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------
# Settings: the single source of truth, copied into expected.json.

SEED_WEIGHTS = 1913
SEED_IMAGES = 2024
SEED_NOISE = 7

WIDTH_DIV = 16
# torchvision cfg "E" (VGG-19); 'M' is a pooling layer.
VGG19_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
             512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M']

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]

CONTENT_PNG = ("content.png", 40, 36)     # name, width, height
STYLE_PNGS = [("style.png", 32, 32), ("style2.png", 24, 28)]
STYLE_BLEND = [0.3, 0.7]
NOISE_SCALE = 0.1

# Default weights a, b, g, chosen so that every term visibly shapes the gradient at
# init (see "grad_l2_per_term" in expected.json): in the default case the weighted
# terms' gradient norms are about 0.008 (content), 0.04 (style), 0.015 (TV).
ALPHA = 1.0       # content
BETA = 10.0       # style
GAMMA = 1.0       # TV

STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
UNIT_STYLE = {l: 1.0 for l in STYLE_LAYERS}


def case(name, content, pool="avg", style=None, normalize=False,
         alpha=ALPHA, beta=BETA, gamma=GAMMA):
    return {"name": name, "content_layers": content,
            "style_layers": style or dict(UNIT_STYLE), "pool": pool,
            "normalize_style": normalize, "alpha": alpha, "beta": beta, "gamma": gamma}


CASES = [
    # DESIGN.md's defaults: content relu4_2, style relu1_1..relu5_1, average pooling.
    case("default", {"relu4_2": 1.0}),
    # Pre-ReLU tap (conv4_2) and a content layer that is also a style layer.
    case("taps", {"conv4_2": 1.0, "relu3_1": 1.0}),
    # Max pooling (argmax routing in the backward pass).
    case("maxpool", {"relu4_2": 1.0}, pool="max"),
    # Non-unit layer weights a_l, b_l ("relu4_2:0.5" on the command line).
    case("layerw", {"conv4_2": 0.5, "relu4_2": 2.0},
         style={"relu1_1": 0.5, "relu2_1": 2.0, "relu3_1": 100.0, "relu4_1": 1e3,
                "relu5_1": 1e5}),
    # Style normalization n_l = 1 / mean(T_l^2) (objective.h); b smaller since each
    # layer then measures a relative error.
    case("normstyle", {"relu4_2": 1.0}, normalize=True, beta=1e-2),
]


# ---------------------------------------------------------------------------------
# The narrow VGG-19.

def layer_table():
    """[(torchvision index, kind, name, in_ch, out_ch)] for the whole features stack."""
    out = []
    idx, block, conv, in_ch = 0, 1, 1, 3
    for v in VGG19_CFG:
        if v == 'M':
            out.append((idx, "pool", "pool%d" % block, in_ch, in_ch))
            idx += 1
            block += 1
            conv = 1
        else:
            c = v // WIDTH_DIV
            out.append((idx, "conv", "conv%d_%d" % (block, conv), in_ch, c))
            out.append((idx + 1, "relu", "relu%d_%d" % (block, conv), c, c))
            idx += 2
            conv += 1
            in_ch = c
    return out


def make_weights():
    """OrderedDict-like list [(name, float32 tensor)] in file order."""
    g = torch.Generator().manual_seed(SEED_WEIGHTS)
    tensors = []
    for idx, kind, _, cin, cout in layer_table():
        if kind != "conv":
            continue
        std = math.sqrt(2.0 / (9 * cin))                      # He normal, fan_in = 9*in
        w = torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float32) * std
        b = torch.randn(cout, generator=g, dtype=torch.float32) * 0.05
        tensors.append(("features.%d.weight" % idx, w.contiguous()))
        tensors.append(("features.%d.bias" % idx, b.contiguous()))
    return tensors


def write_safetensors(path, tensors):
    """safetensors by hand: u64 LE header length N, N bytes of JSON (space padded so
    that N % 8 == 0), then the tensors' little-endian bytes back to back."""
    header, blobs, off = {}, [], 0
    for name, t in tensors:
        data = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hj = json.dumps(header, separators=(",", ":")).encode("ascii")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Independent reader, used to check what was written."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n].decode("ascii"))
    data = raw[8 + n:]
    out = {}
    end = 0
    for name, meta in header.items():
        a, b = meta["data_offsets"]
        assert a == end, "tensors not contiguous"
        end = b
        t = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32)
        out[name] = t.reshape(meta["shape"])
    assert end == len(data), "trailing bytes"
    return out


PTH_NCONV = 8          # narrow_vgg.pth: conv1_1 .. conv3_4 (features.0 .. features.16)


def write_pth(path, tensors):
    """The first PTH_NCONV convolutions of `tensors` as torch.save (zip format) writes
    the state_dict() of a module with torchvision's layout: keys features.N.weight /
    .bias in order, _metadata, a small classifier (ignored by tessera).  Two tensors
    exercise a reader's layout code: features.2.weight is a non-contiguous view (same
    values, strides of a transposed copy) and features.0.bias / features.2.bias are
    views at offsets 0 and 4 of one shared storage."""
    layers, n = [], 0
    for idx, kind, _, cin, cout in layer_table():
        if n == PTH_NCONV:
            break
        if kind == "conv":
            layers.append(torch.nn.Conv2d(cin, cout, 3, padding=1))
            n += 1
        elif kind == "relu":
            layers.append(torch.nn.ReLU(inplace=True))
        else:
            layers.append(torch.nn.AvgPool2d(2, 2))
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*layers)
    model.classifier = torch.nn.Sequential(torch.nn.Linear(cout, 2))
    sd = model.state_dict()
    values = dict(tensors)
    for k in sd:
        if k.startswith("features."):
            sd[k] = values[k].clone()
        else:
            sd[k] = torch.arange(sd[k].numel(), dtype=torch.float32).reshape(sd[k].shape)
    w = sd["features.2.weight"]
    sd["features.2.weight"] = w.transpose(0, 1).contiguous().transpose(0, 1)
    assert not sd["features.2.weight"].is_contiguous()
    shared = torch.cat([sd["features.0.bias"], sd["features.2.bias"]])
    sd["features.0.bias"] = shared[:4]
    sd["features.2.bias"] = shared[4:]
    torch.save(sd, path)
    back = torch.load(path)
    assert list(back) == list(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k
    return back


# ---------------------------------------------------------------------------------
# Images.

def synth_image(w, h, gen, kind):
    """Smooth gradients + stripes + soft blobs, [3, h, w] float in [0, 1]."""
    y = torch.linspace(0, 1, h, dtype=torch.float64).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w, dtype=torch.float64).view(1, w).expand(h, w)
    ph = torch.rand(3, generator=gen, dtype=torch.float64) * 2 * math.pi
    ch = []
    for c in range(3):
        if kind == "content":
            v = 0.25 + 0.45 * (0.6 * x + 0.4 * y if c == 0 else
                               (1 - x) * 0.7 + 0.3 * y if c == 1 else
                               0.5 + 0.5 * torch.sin(3.0 * x + 2.0 * y + ph[c]))
        else:
            f = 5.0 + 3.0 * c
            v = 0.5 + 0.35 * torch.sin(2 * math.pi * f * (x * 0.8 + y * 0.6) + ph[c]) \
                + 0.1 * torch.cos(2 * math.pi * 3 * y + ph[c])
        ch.append(v)
    img = torch.stack(ch)
    for _ in range(4 if kind == "content" else 3):                  # blobs
        cx, cy = torch.rand(2, generator=gen, dtype=torch.float64)
        r = 0.08 + 0.15 * torch.rand(1, generator=gen, dtype=torch.float64).item()
        col = torch.rand(3, generator=gen, dtype=torch.float64).view(3, 1, 1)
        m = torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
        img = img * (1 - 0.8 * m) + col * 0.8 * m
    if kind == "content":                                            # a few stripes
        stripes = (torch.floor(x * w / 4) % 2 == 0) & (y > 0.65) & (y < 0.8)
        img = torch.where(stripes, img * 0.4 + 0.6, img)
    img = img + 0.03 * torch.randn(3, h, w, generator=gen, dtype=torch.float64)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def write_png(path, rgb):
    """8-bit RGB, non-interlaced, filter 0 on every row.  rgb: uint8 [3, h, w]."""
    _, h, w = rgb.shape
    pix = rgb.permute(1, 2, 0).contiguous().numpy().tobytes()       # [h, w, 3]
    rows = b"".join(b"\x00" + pix[r * 3 * w:(r + 1) * 3 * w] for r in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff))
    png = (b"\x89PNG\r\n\x1a\n" +
           chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def to_unit_float32(rgb):
    """What tessera does on load: bytes / 255 in float32.  [3, h, w]."""
    return rgb.to(torch.float32) / 255.0


def write_f32(path, t):
    with open(path, "wb") as f:
        f.write(t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


# ---------------------------------------------------------------------------------
# The objective, in float64.

def features(x, weights, taps, pool):
    """x: [3, h, w] RGB in [0,1].  Returns {tap name: [C, H, W]} for the taps, running
    only as deep as the deepest tap."""
    mean = torch.tensor(MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(STD, dtype=x.dtype).view(3, 1, 1)
    h = ((x - mean) / std).unsqueeze(0)
    out, need = {}, set(taps)
    for idx, kind, name, _, _ in layer_table():
        if not need:
            break
        if kind == "conv":
            h = F.conv2d(h, weights["features.%d.weight" % idx],
                         weights["features.%d.bias" % idx], padding=1)
        elif kind == "relu":
            h = F.relu(h)
        else:
            h = F.avg_pool2d(h, 2, 2) if pool == "avg" else F.max_pool2d(h, 2, 2)
        if name in need:
            out[name] = h[0]
            need.discard(name)
    assert not need, need
    return out


def gram(f):
    c, h, w = f.shape
    m = f.reshape(c, h * w)
    return m @ m.t() / (c * h * w)


def tv(x):
    return ((x[:, :, 1:] - x[:, :, :-1]) ** 2).mean() + \
           ((x[:, 1:, :] - x[:, :-1, :]) ** 2).mean()


def evaluate(cs, weights, xinit, content, styles):
    """One case: loss terms, d total / d x at xinit, and the style targets."""
    cl, sl, pool = cs["content_layers"], cs["style_layers"], cs["pool"]
    taps = list(dict.fromkeys(list(cl) + list(sl)))
    with torch.no_grad():
        pc = features(content, weights, list(cl), pool)
        sf = [features(s, weights, list(sl), pool) for s in styles]
        targets = {l: sum(wb * gram(f[l]) for wb, f in zip(STYLE_BLEND, sf)) for l in sl}
        norm = {l: (1.0 / (targets[l] ** 2).mean().item() if cs["normalize_style"]
                    else 1.0) for l in sl}

    def terms(x):
        fx = features(x, weights, taps, pool)
        lc = {l: ((fx[l] - pc[l]) ** 2).mean() for l in cl}
        ls = {l: ((gram(fx[l]) - targets[l]) ** 2).mean() for l in sl}
        wc = cs["alpha"] * sum(cl[l] * lc[l] for l in cl)
        ws = cs["beta"] * sum(sl[l] * norm[l] * ls[l] for l in sl)
        wt = cs["gamma"] * tv(x)
        return fx, lc, ls, wc, ws, wt

    x = xinit.clone().requires_grad_(True)
    fx, lc, ls, wc, ws, wt = terms(x)
    total = wc + ws + wt
    (grad,) = torch.autograd.grad(total, x)
    gn = {}                               # per-term gradient norms
    for i, key in ((3, "content"), (4, "style"), (5, "tv")):
        x2 = xinit.clone().requires_grad_(True)
        (g2,) = torch.autograd.grad(terms(x2)[i], x2)
        gn[key] = g2.norm().item()
    res = {
        "content_layers": cl,
        "style_layers": sl,
        "pool": pool,
        "normalize_style": cs["normalize_style"],
        "alpha": cs["alpha"], "beta": cs["beta"], "gamma": cs["gamma"],
        "content": sum(lc.values()).item(),
        "style": sum(ls.values()).item(),
        "tv": tv(x).item(),
        "total": total.item(),
        "weighted": {"content": wc.item(), "style": ws.item(), "tv": wt.item()},
        "content_per_layer": {l: v.item() for l, v in lc.items()},
        "style_per_layer": {l: v.item() for l, v in ls.items()},
        "style_norm": norm,
        "feature_shapes": {l: list(fx[l].shape) for l in taps},
        "grad_file": "grad_%s.f32" % cs["name"],
        "grad_l2": grad.norm().item(),
        "grad_l2_per_term": gn,
        "targets_file": "targets_%s.f32" % pool,
        "targets_layout": "float32 LE, T_l [C_l][C_l] row-major, concatenated in "
                          "style_layers order",
    }
    return res, grad, targets


# ---------------------------------------------------------------------------------

def check_against_torchvision(weights, x):
    """The layer numbering and our forward agree with torchvision's own VGG builder."""
    try:
        from torchvision.models.vgg import make_layers
    except ImportError:
        print("torchvision not found: skipping the layer-numbering check")
        return
    cfg = [v if v == 'M' else v // WIDTH_DIV for v in VGG19_CFG]
    net = make_layers(cfg, batch_norm=False).double().eval()
    sd = {k[len("features."):]: v.double() for k, v in weights.items()}
    missing = net.load_state_dict(sd, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    mean = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    with torch.no_grad():
        ref = net[:30]((((x - mean) / std)).unsqueeze(0))[0]       # up to relu5_1
        ours = features(x, weights, ["relu5_1"], "max")["relu5_1"]
    err = (ref - ours).abs().max().item()
    assert err < 1e-12, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)              # reductions in a fixed order
    torch.use_deterministic_algorithms(True)

    # Weights: float32 on disk; the reference uses exactly those values in float64.
    tensors = make_weights()
    st_path = os.path.join(out, "narrow_vgg.safetensors")
    write_safetensors(st_path, tensors)
    back = read_safetensors(st_path)
    assert list(back) == [n for n, _ in tensors]
    for n, t in tensors:
        assert torch.equal(back[n], t), n
    w64 = {n: t.double() for n, t in back.items()}
    pth = write_pth(os.path.join(out, "narrow_vgg.pth"), tensors)
    for k, t in pth.items():
        if k.startswith("features."):
            assert torch.equal(t, back[k]), k

    # Images.
    gen = torch.Generator().manual_seed(SEED_IMAGES)
    name, cw, chh = CONTENT_PNG
    content_u8 = synth_image(cw, chh, gen, "content")
    write_png(os.path.join(out, name), content_u8)
    style_u8 = []
    for sname, sw, sh in STYLE_PNGS:
        s = synth_image(sw, sh, gen, "style")
        write_png(os.path.join(out, sname), s)
        style_u8.append(s)
    try:                                  # the PNGs decode to the same bytes
        from PIL import Image
        import numpy as np
        for (fname, _, _), u8 in zip([CONTENT_PNG] + STYLE_PNGS, [content_u8] + style_u8):
            im = Image.open(os.path.join(out, fname))
            assert im.mode == "RGB"
            a = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
            assert torch.equal(a, u8), fname
    except ImportError:
        print("PIL not found: skipping the PNG read-back check")

    content32 = to_unit_float32(content_u8)
    styles32 = [to_unit_float32(s) for s in style_u8]

    # The evaluation point: content + 0.1 * N(0,1), float32, not clamped.
    gn = torch.Generator().manual_seed(SEED_NOISE)
    noise = torch.randn(content32.shape, generator=gn, dtype=torch.float32)
    init32 = (content32 + NOISE_SCALE * noise).to(torch.float32)
    write_f32(os.path.join(out, "init.f32"), init32)

    content64 = content32.double()
    styles64 = [s.double() for s in styles32]
    init64 = init32.double()
    check_against_torchvision(w64, content64)

    expected = {
        "generator": "tools/make_fixtures.py (torch %s), float64" % torch.__version__,
        "weights_file": "narrow_vgg.safetensors",
        "width_divisor": WIDTH_DIV,
        "content_image": {"file": CONTENT_PNG[0], "width": cw, "height": chh},
        "style_images": [{"file": n, "width": w, "height": h, "blend": b}
                         for (n, w, h), b in zip(STYLE_PNGS, STYLE_BLEND)],
        "init_file": "init.f32",
        "init": "content/255 (float32) + %g * randn (torch seed %d, float32), unclamped"
                % (NOISE_SCALE, SEED_NOISE),
        "image_layout": "float32 little-endian [3][H][W], RGB planes, row-major",
        "normalize": {"mean": MEAN, "std": STD, "formula": "(x - mean) / std, x in [0,1]"},
        "objective": "total = alpha*sum_l a_l*mean((F_l(x)-F_l(c))^2) + "
                     "beta*sum_l b_l*n_l*mean((G_l(x)-T_l)^2) + gamma*TV(x); "
                     "n_l = 1/mean(T_l^2) if normalize_style else 1; "
                     "G = F F^T/(C*H*W); T_l = sum_s blend_s G_l(style_s); "
                     "TV = mean(dx^2) + mean(dy^2) over all 3 channels",
        "cases": {},
    }
    written = ["narrow_vgg.safetensors", "narrow_vgg.pth", "init.f32", CONTENT_PNG[0]] + \
              [n for n, _, _ in STYLE_PNGS]
    for cs in CASES:
        res, grad, targets = evaluate(cs, w64, init64, content64, styles64)
        write_f32(os.path.join(out, res["grad_file"]), grad)
        write_f32(os.path.join(out, res["targets_file"]),
                  torch.cat([targets[l].reshape(-1) for l in cs["style_layers"]]))
        written += [res["grad_file"]] + \
            ([res["targets_file"]] if res["targets_file"] not in written else [])
        # How close a float32 evaluation of the same thing comes (what C can reach).
        r32, g32, _ = evaluate(cs, {n: t.float() for n, t in w64.items()},
                               init32, content32, styles32)
        res["float32_torch"] = {
            "total_rel_err": abs(r32["total"] - res["total"]) / abs(res["total"]),
            "grad_rel_l2_err": ((g32.double() - grad).norm() / grad.norm()).item(),
            "grad_max_abs_err_over_max_abs":
                ((g32.double() - grad).abs().max() / grad.abs().max()).item(),
        }
        expected["cases"][cs["name"]] = res
        print("%-9s content %.4e style %.4e tv %.4e total %.6e |grad| %.4e  "
              "weighted %s  |grad| per term %s" % (
                  cs["name"], res["content"], res["style"], res["tv"], res["total"],
                  res["grad_l2"],
                  " ".join("%.3e" % v for v in res["weighted"].values()),
                  " ".join("%.3e" % v for v in res["grad_l2_per_term"].values())))
        print("          float32 torch vs float64: %s" % " ".join(
            "%s %.2e" % kv for kv in res["float32_torch"].items()))

    expected["sha256"] = {}
    for fname in written:
        with open(os.path.join(out, fname), "rb") as f:
            expected["sha256"][fname] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in written + ["expected.json"])
    print("wrote %s (%d bytes)" % (out, total))
    return 0


if __name__ == "__main__":
    sys.exit(main())
