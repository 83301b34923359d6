#!/usr/bin/python3
"""The Pillow side of bench/decode_vs_pillow.sh: what a torchvision user's data loader
does per ImageNet training image, in images/s per process (= per core).

    decode_vs_pillow.py DIR [--seconds 3] [--procs 1,N] [--variants pillow,pillow-draft]

Every image file under DIR is read into memory first (the disk is not measured). Per image:
  pillow        Image.open(BytesIO(b)).convert('RGB'), RandomResizedCrop(224),
                RandomHorizontalFlip()                 (torchvision 0.14 on PIL images)
  pillow-draft  the same with img.draft('RGB', (224, 224)) before convert(): Pillow's
                DCT scaling. It can only use the final size, not the crop (unknown
                before the image size is), so it picks a scale that keeps the WHOLE
                image >= 224x224: for ImageNet's ~500x375 files that is 1/1, i.e. nothing.
Runs on P processes at once (fork, started together), for each P in --procs (default 1
and all cores); prints a table and "RESULT variant procs images seconds images_per_s".
No assertions: it reports.
"""

import argparse
import io
import multiprocessing as mp
import os
import sys
import time

from PIL import Image

EXTS = (".jpeg", ".jpg", ".png")


def load_all(d):
    paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.lower().endswith(EXTS))
    if not paths:
        sys.exit(f"{d}: no .jpeg/.jpg/.png files below it")
    out = []
    for p in paths:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def worker(files, variant, rank, procs, seconds, barrier, results):
    import torch
    from torchvision import transforms

    torch.set_num_threads(1)
    torch.manual_seed(rank)
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()])
    draft = variant == "pillow-draft"
    i = rank
    count = 0
    barrier.wait()
    t0 = time.perf_counter()
    while True:
        img = Image.open(io.BytesIO(files[i % len(files)]))
        if draft:
            img.draft("RGB", (224, 224))
        out = tf(img.convert("RGB"))
        out.tobytes()  # materialise, as ToTensor would
        count += 1
        i += procs
        if time.perf_counter() - t0 >= seconds:
            break
    results.put((count, time.perf_counter() - t0))


def measure(files, variant, procs, seconds):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(files, variant, r, procs, seconds, barrier, results)) for r in range(procs)]
    for p in ps:
        p.start()
    got = [results.get() for _ in ps]
    for p in ps:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"decode_vs_pillow: a {variant} worker exited with {p.exitcode}")
    images = sum(c for c, _ in got)
    secs = max(s for _, s in got)
    return images, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--procs", default="")
    ap.add_argument("--variants", default="pillow,pillow-draft")
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    procs = [int(p) for p in a.procs.split(",")] if a.procs else ([1, cores] if cores > 1 else [1])
    variants = a.variants.split(",")
    for v in variants:
        if v not in ("pillow", "pillow-draft"):
            ap.error(f"--variants: '{v}' is not pillow or pillow-draft")
    files = load_all(a.dir)
    total = sum(len(b) for b in files)
    import PIL
    import torchvision
    print(f"decode_vs_pillow: {len(files)} files, {total / 1e6:.1f} MB ({total / 1e3 / len(files):.1f} KB/file), "
          f"Pillow {PIL.__version__}, torchvision {torchvision.__version__}, {cores} cores")
    print(f"{'mode':<13} {'procs':>5} {'images':>8} {'seconds':>8} {'images/s':>10} {'images/s/proc':>14}")
    lines = []
    for p in procs:
        for v in variants:
            n, s = measure(files, v, p, a.seconds)
            ips = n / s
            print(f"{v:<13} {p:>5} {n:>8} {s:>8.2f} {ips:>10.1f} {ips / p:>14.1f}", flush=True)
            lines.append(f"RESULT {v} {p} {n} {s:.3f} {ips:.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
