#!/usr/bin/python3
"""Fashion-MNIST as an ImageFolder, for tests that need real images with known labels.

    make_fashion_folder.py OUT [--train N] [--test N] [--quality 95] [--format jpeg|png]

reads the IDX .gz files of Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist,
or --idx-dir) and writes the first N images of each split, in IDX order, as 28x28 greyscale
files OUT/train/<class>/<index>.JPEG (test split: OUT/val/...), <index> = the image's
position in its IDX file, zero-padded to 5 digits, so names sort in IDX order within a
class. Class folders "0-tshirt" ... "9-ankle-boot": sorted() = label order. --format png
writes lossless .png files instead (pixels equal to the IDX bytes). Without N: the whole
split; N = 0: none (the class folders are still made).
"""

import argparse
import gzip
import io
import os
import struct
import sys

import numpy as np
from PIL import Image

CLASSES = ["0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt", "7-sneaker",
           "8-bag", "9-ankle-boot"]


def read_idx(path, want_magic):
    """An IDX file as a numpy uint8 array; dims from the header."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit(f"{path}: {len(data)} bytes, shorter than an IDX header")
    magic, n = struct.unpack(">II", data[:8])
    if magic != want_magic:
        sys.exit(f"{path}: magic 0x{magic:08x}, expected 0x{want_magic:08x}")
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    count = int(np.prod(dims))
    if len(body) != count:
        sys.exit(f"{path}: {len(body)} data bytes, the header {dims} says {count}")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def write_split(out, split, images, labels, n, fmt, quality):
    n = len(images) if n is None else max(0, min(n, len(images)))
    ext = ".JPEG" if fmt == "jpeg" else ".png"
    for name in CLASSES:
        os.makedirs(os.path.join(out, split, name), exist_ok=True)
    for i in range(n):
        buf = io.BytesIO()
        im = Image.fromarray(images[i], "L")
        if fmt == "jpeg":
            im.save(buf, "JPEG", quality=quality)
        else:
            im.save(buf, "PNG")
        with open(os.path.join(out, split, CLASSES[labels[i]], f"{i:05d}{ext}"), "wb") as f:
            f.write(buf.getvalue())
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=None, help="first N training images (default: all 60,000)")
    ap.add_argument("--test", type=int, default=None, help="first N test images, written to val/ (default: all 10,000)")
    ap.add_argument("--quality", type=int, default=95)
    ap.add_argument("--format", choices=("jpeg", "png"), default="jpeg")
    ap.add_argument("--idx-dir", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    if not 1 <= a.quality <= 100:
        ap.error("--quality must be in 1..100")
    counts = []
    for prefix, split, n in (("train", "train", a.train), ("t10k", "val", a.test)):
        img_path = os.path.join(a.idx_dir, f"{prefix}-images-idx3-ubyte.gz")
        lab_path = os.path.join(a.idx_dir, f"{prefix}-labels-idx1-ubyte.gz")
        for p in (img_path, lab_path):
            if not os.path.exists(p):
                sys.exit(f"{p}: missing (apt-get install dataset-fashion-mnist, or --idx-dir)")
        images = read_idx(img_path, 0x00000803)
        labels = read_idx(lab_path, 0x00000801)
        if len(images) != len(labels) or images.shape[1:] != (28, 28):
            sys.exit(f"{img_path}: {images.shape} images for {len(labels)} labels, expected N x 28 x 28")
        counts.append(write_split(a.out, split, images, labels, n, a.format, a.quality))
    print(f"{a.out}: {counts[0]} train + {counts[1]} val images ({a.format})")


if __name__ == "__main__":
    main()
