#!/usr/bin/python3
"""An ImageNet-shaped ImageFolder made from real photographs, for tests and benches.

    make_photo_folder.py OUT [--classes 10] [--per-class 300] [--val-per-class 50] [--seed 1]
                         [--quality-range 75,95] [--grain 0]

writes OUT/train/<wnid>/<wnid>_<k>.JPEG and OUT/val/<wnid>/ILSVRC2012_val_<n>.JPEG
(class ids n01440764, ... increasing, so sorted() = label order) and OUT/sources.txt
(class -> source photographs and variant). Sources: the photographs of Debian's
mate-backgrounds package (/usr/share/backgrounds/mate, its distinct .jpg photos; the
RGB .png renders only when there are more classes than jpgs). Classes take the sources
round-robin (class i: sources i, i+C, ...); past the number of sources a class reuses one
flipped/rotated, with permuted channels, then inverted ("variant").

Each image is a crop of ImageNet's typical size (long side 500 or 400-499, short side
333/375 or 330-375; ~15 % portrait) taken from the source at a scale of 1, 1/1.5, 1/2 or
1/3 (so the detail per pixel varies), re-encoded by Pillow at quality 75-95 (mode ~90).
Per split: ~5 % greyscale ("L"), ~3 % Adobe CMYK, ~1 % PNG under a .JPEG name, ~2 %
progressive (each kind at least once when the split has >= 8 images); RGB baseline
files are mostly 4:2:0, some 4:4:4 and 4:2:2. Everything is a function of --seed; the
work is spread over the cores (one task per class), the result does not depend on that.

These wallpapers are smoother than ImageNet's photos: ~30 KB per file against ImageNet's
~110 KB, and entropy decoding costs per byte. For decode benchmarks, --grain 5
--quality-range 92,98 adds sensor-like noise (Gaussian, sigma 5 in luma, half that per
channel) and gives ~100 KB per file, ImageNet's density.
"""

import argparse
import glob
import io
import math
import multiprocessing
import os
import random
import sys

import numpy as np
from PIL import Image

MATE = "/usr/share/backgrounds/mate"
SCALES = (1.0, 1 / 1.5, 1 / 2, 1 / 3)  # source scale levels the crops are taken from
FIRST_WNID = 1440764                   # ImageNet's first class id (n01440764)
WNID_STEP = 97531


def sources():
    """Distinct JPEG photographs (one size of each picture), then the RGB PNG renders."""
    jpgs, seen = [], set()
    for f in sorted(glob.glob(os.path.join(MATE, "**", "*.jpg"), recursive=True)):
        stem = os.path.basename(f).split("_")[0].split(".")[0]  # Elephants_3840x2160 -> Elephants
        if stem not in seen:
            seen.add(stem)
            jpgs.append(f)
    pngs = []
    for f in sorted(glob.glob(os.path.join(MATE, "**", "*.png"), recursive=True)):
        with Image.open(f) as im:
            if im.mode == "RGB":  # the RGBA/LA ones are line art on transparency
                pngs.append(f)
    return jpgs, pngs


def class_sources(classes, jpgs, pngs):
    """Per class: [(path, variant)], variant 0 = the photo as is."""
    pool = list(jpgs) if classes <= len(jpgs) else list(jpgs) + list(pngs)
    if not pool:
        sys.exit(f"make_photo_folder: no photographs under {MATE} (apt-get install mate-backgrounds)")
    out = []
    for i in range(classes):
        if classes <= len(pool):
            out.append([(pool[j], 0) for j in range(i, len(pool), classes)])
        else:
            out.append([(pool[i % len(pool)], i // len(pool))])
    return out


def apply_variant(im, variant):
    if variant == 0:
        return im
    dihedral = variant % 8
    if dihedral:
        im = im.transpose([None, Image.FLIP_LEFT_RIGHT, Image.FLIP_TOP_BOTTOM, Image.ROTATE_90,
                           Image.ROTATE_180, Image.ROTATE_270, Image.TRANSPOSE, Image.TRANSVERSE][dihedral])
    perm = (variant // 8) % 6
    if perm:
        order = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)][perm]
        bands = im.split()
        im = Image.merge("RGB", [bands[k] for k in order])
    if (variant // 48) % 2:
        im = Image.eval(im, lambda v: 255 - v)
    return im


def plan_split(rng, split, classes, per_class, qlo, qhi):
    """The list of images of one split, every random decision drawn here, in order."""
    n = classes * per_class
    kinds = ["rgb"] * n
    special = [("grey", 0.05), ("cmyk", 0.03), ("png", 0.01), ("progressive", 0.02)]
    free = list(range(n))
    rng.shuffle(free)
    for kind, frac in special:
        count = max(1 if n >= 8 else 0, int(round(frac * n)))
        for _ in range(min(count, len(free))):
            kinds[free.pop()] = kind
    items = []
    for idx in range(n):
        c, k = divmod(idx, per_class)
        long_side = 500 if rng.random() < 0.7 else 400 + int(rng.random() * 100)
        r = rng.random()
        short_side = 375 if r < 0.45 else 333 if r < 0.7 else 330 + int(rng.random() * 46)
        w, h = (short_side, long_side) if rng.random() < 0.15 else (long_side, short_side)
        quality = int(round(rng.triangular(qlo, qhi, qlo + 0.8 * (qhi - qlo))))
        r = rng.random()
        subsampling = 2 if r < 0.8 else 0 if r < 0.92 else 1  # Pillow: 2 = 4:2:0, 0 = 4:4:4, 1 = 4:2:2
        wnid = f"n{FIRST_WNID + c * WNID_STEP:08d}"
        name = f"{wnid}_{k + 1}.JPEG" if split == "train" else f"ILSVRC2012_val_{idx + 1:08d}.JPEG"
        items.append(dict(split=split, cls=c, wnid=wnid, name=name, w=w, h=h, kind=kinds[idx], quality=quality,
                          subsampling=subsampling, src=rng.random(), level=rng.random(), ux=rng.random(),
                          uy=rng.random(), gx=rng.random(), gy=rng.random()))
    return items


def to_cmyk(rgb):
    """Adobe-style CMYK with black generation, chosen so that Pillow's CMYK->RGB returns the RGB."""
    a = np.asarray(rgb, dtype=np.float32)
    cmy = 255.0 - a
    k = cmy.min(axis=2, keepdims=True)
    denom = np.maximum(255.0 - k, 1.0)
    c = np.where(k >= 255.0, 0.0, (cmy - k) * 255.0 / denom)
    out = np.concatenate([c, k], axis=2)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "CMYK")


def levels_of(path, variant):
    im = Image.open(path)
    im = apply_variant(im.convert("RGB"), variant)
    lv = [im]
    for s in SCALES[1:]:
        inv = round(1 / s)
        if abs(1 / s - inv) < 1e-9:
            lv.append(im.reduce(inv))
        else:
            lv.append(im.resize((round(im.width * s), round(im.height * s)), Image.BILINEAR, reducing_gap=2.0))
    return lv


GRAIN_TILE = 1024


def grain_tile(seed, cls, sigma):
    """A fixed noise field per class (windows of it are added to the crops): luma + chroma grain."""
    g = np.random.default_rng([seed, cls])
    luma = g.normal(0.0, sigma, (GRAIN_TILE, GRAIN_TILE, 1))
    chroma = g.normal(0.0, sigma / 2, (GRAIN_TILE, GRAIN_TILE, 3))
    return (luma + chroma).astype(np.float32)


def add_grain(img, tile, gx, gy):
    a = np.asarray(img, dtype=np.float32)
    h, w = a.shape[:2]
    x, y = int(gx * (GRAIN_TILE - w + 1)), int(gy * (GRAIN_TILE - h + 1))
    a = a + tile[y:y + h, x:x + w]
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")


def make_class(job):
    out_dir, srcs, items, seed, grain = job
    pyramids = [levels_of(p, v) for p, v in srcs]
    tile = grain_tile(seed, items[0]["cls"], grain) if grain > 0 and items else None
    for it in items:
        lv = pyramids[min(int(it["src"] * len(pyramids)), len(pyramids) - 1)]
        fits = [im for im in lv if im.width >= it["w"] and im.height >= it["h"]]
        if fits:
            src = fits[min(int(it["level"] * len(fits)), len(fits) - 1)]
            x = int(it["ux"] * (src.width - it["w"] + 1))
            y = int(it["uy"] * (src.height - it["h"] + 1))
            img = src.crop((x, y, x + it["w"], y + it["h"]))
        else:  # a source smaller than the crop: scale it up to cover, then centre-crop
            src = lv[0]
            s = max(it["w"] / src.width, it["h"] / src.height)
            big = src.resize((math.ceil(src.width * s), math.ceil(src.height * s)), Image.BILINEAR)
            x, y = (big.width - it["w"]) // 2, (big.height - it["h"]) // 2
            img = big.crop((x, y, x + it["w"], y + it["h"]))
        if tile is not None:
            img = add_grain(img, tile, it["gx"], it["gy"])
        path = os.path.join(out_dir, it["split"], it["wnid"], it["name"])
        buf = io.BytesIO()
        kind = it["kind"]
        if kind == "png":
            img.save(buf, "PNG")
        elif kind == "grey":
            img.convert("L").save(buf, "JPEG", quality=it["quality"])
        elif kind == "cmyk":
            to_cmyk(img).save(buf, "JPEG", quality=it["quality"])
        else:
            img.save(buf, "JPEG", quality=it["quality"], subsampling=it["subsampling"],
                     progressive=(kind == "progressive"))
        with open(path, "wb") as f:
            f.write(buf.getvalue())
    return len(items)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--val-per-class", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quality-range", default="75,95", help="LO,HI: JPEG quality, triangular with mode LO+0.8(HI-LO)")
    ap.add_argument("--grain", type=float, default=0.0, help="sensor-like noise sigma (0: none); see above")
    ap.add_argument("--jobs", type=int, default=0, help="processes (0: all cores); no effect on the output")
    a = ap.parse_args()
    if a.classes < 1 or a.per_class < 0 or a.val_per_class < 0:
        ap.error("--classes must be >= 1, --per-class and --val-per-class >= 0")
    try:
        qlo, qhi = (int(v) for v in a.quality_range.split(","))
    except ValueError:
        ap.error(f"--quality-range '{a.quality_range}': two integers LO,HI")
    if not 1 <= qlo <= qhi <= 100:
        ap.error(f"--quality-range {qlo},{qhi}: need 1 <= LO <= HI <= 100")
    if not 0 <= a.grain <= 64:
        ap.error("--grain must be in 0..64")

    jpgs, pngs = sources()
    per_class_src = class_sources(a.classes, jpgs, pngs)
    rng = random.Random(a.seed)
    items = (plan_split(rng, "train", a.classes, a.per_class, qlo, qhi) +
             plan_split(rng, "val", a.classes, a.val_per_class, qlo, qhi))
    for split in ("train", "val"):
        for c in range(a.classes):
            os.makedirs(os.path.join(a.out, split, f"n{FIRST_WNID + c * WNID_STEP:08d}"), exist_ok=True)
    with open(os.path.join(a.out, "sources.txt"), "w") as f:
        f.write("# label wnid source(variant) ...; variant: dihedral + 8*channel_perm + 48*invert\n")
        for c, srcs in enumerate(per_class_src):
            f.write(f"{c} n{FIRST_WNID + c * WNID_STEP:08d} " +
                    " ".join(f"{os.path.relpath(p, MATE)}({v})" for p, v in srcs) + "\n")
    jobs = [(a.out, per_class_src[c], [it for it in items if it["cls"] == c], a.seed, a.grain)
            for c in range(a.classes)]
    jobs.sort(key=lambda j: -len(j[2]))
    procs = a.jobs or os.cpu_count() or 1
    if procs > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(min(procs, len(jobs))) as pool:
            total = sum(pool.imap_unordered(make_class, jobs))
    else:
        total = sum(map(make_class, jobs))
    kinds = {}
    for it in items:
        kinds[it["kind"]] = kinds.get(it["kind"], 0) + 1
    print(f"{a.out}: {total} images, {a.classes} classes ({a.per_class} train + {a.val_per_class} val each); "
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


if __name__ == "__main__":
    main()
