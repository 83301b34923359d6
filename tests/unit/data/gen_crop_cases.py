#!/usr/bin/python3
"""Expected values for tests/unit/data_crop_box_test.cc, computed by the REAL
torchvision 0.14 / torch 1.13 / Pillow 9.4 (Debian's python3-torchvision,
python3-pil), printed as C++ tables:

  * RandomResizedCrop.get_params on fixed draws. torch.empty(1).uniform_(a, b)
    runs for real, each call under its own torch.manual_seed(s); the U[0,1)
    draw handed to C++ is what the same seed gives for uniform_(0, 1) (torch's
    24-bit draw), so C++ sees the very number torch scaled. torch.randint is
    replaced by floor(u * n) (crop_box.h's definition: torch's randint takes a
    32-bit draw modulo n, which is no function of one U[0,1) value).
  * EvalBox: torchvision's Resize(resize) output size and CenterCrop(crop)
    offsets, read back from real transforms applied to a coordinate image.
  * ResampleBilinear: Pillow's resize(BILINEAR, box) and crop(box).resize of a
    small synthetic image, for boxes exactly representable in float32 (Pillow
    parses the box as float32; here it stays double, equal for these boxes).

Run: /usr/bin/python3 tests/unit/data/gen_crop_cases.py > /tmp/cases.inc and
paste the tables into the test (they are printed in its order).
"""
import math
import random

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

assert torchvision.__version__.startswith("0.14"), torchvision.__version__
assert torch.__version__.startswith("1.13"), torch.__version__

_real_empty = torch.empty
_real_randint = torch.randint


class Draws:
    """Feeds get_params: real torch uniform_ under chosen seeds, randint from u."""

    def __init__(self, seeds, randint_us):
        self.seeds = list(seeds)
        self.randint_us = list(randint_us)
        self.used = []  # the U[0,1) values in the order get_params consumed them

    def empty(self, *size, **kw):
        draws = self

        class _Uniform:
            def uniform_(self, a, b):
                seed = draws.seeds.pop(0)
                torch.manual_seed(seed)
                u = _real_empty(1).uniform_(0, 1).item()
                torch.manual_seed(seed)
                draws.used.append(u)
                return _real_empty(1).uniform_(a, b)

        return _Uniform()

    def randint(self, low, high, size=None, **kw):
        u = self.randint_us.pop(0)
        self.used.append(u)
        return torch.tensor([low + math.floor(u * (high - low))])


def get_params(width, height, scale, ratio, draws):
    img = Image.new("L", (width, height))
    torch.empty, torch.randint = draws.empty, draws.randint
    try:
        return T.RandomResizedCrop.get_params(img, list(scale), list(ratio))
    finally:
        torch.empty, torch.randint = _real_empty, _real_randint


def rrc_cases():
    rng = random.Random(20240601)
    cases = []
    shapes = [(500, 375), (375, 500), (640, 480), (333, 500), (224, 224), (1000, 120), (120, 1000),
              (32, 32), (4, 3), (2000, 1500)]
    params = [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.25, 1.0), (3 / 4, 4 / 3)), ((0.08, 1.0), (0.5, 2.0)),
              ((0.9, 1.0), (1.0, 1.0))]
    for k in range(48):
        w, h = shapes[k % len(shapes)]
        scale, ratio = params[(k // len(shapes)) % len(params)]
        draws = Draws([rng.randrange(1 << 31) for _ in range(20)], [rng.random() for _ in range(2)])
        i, j, hh, ww = get_params(w, h, scale, ratio, draws)
        cases.append((w, h, scale, ratio, list(draws.used), (i, j, hh, ww)))
    return cases


def eval_cases():
    cases = []
    for (w, h) in [(500, 375), (375, 500), (333, 500), (640, 427), (256, 300), (1000, 200), (224, 224),
                   (257, 999), (300, 256)]:
        for resize, crop in [(256, 224), (224, 224), (292, 256)]:
            # A coordinate image: after Resize + CenterCrop, the top-left pixel
            # tells the offsets (NEAREST keeps the values exact).
            new_h, new_w = F._compute_resized_output_size((h, w), [resize])
            xs = torch.arange(new_w).repeat(new_h, 1)
            ys = torch.arange(new_h).unsqueeze(1).repeat(1, new_w)
            cropped_x = T.CenterCrop(crop)(xs.unsqueeze(0))
            cropped_y = T.CenterCrop(crop)(ys.unsqueeze(0))
            left, top = int(cropped_x[0, 0, 0]), int(cropped_y[0, 0, 0])
            resized = T.Resize(resize)(Image.new("L", (w, h)))
            assert resized.size == (new_w, new_h)
            cases.append((w, h, resize, crop, new_w, new_h, left, top))
    return cases


def synthetic(w, h, c):
    y, x, ch = np.mgrid[0:h, 0:w, 0:c]
    return ((x * 37 + y * 91 + ch * 53 + (x * y) % 7 * 11) % 256).astype(np.uint8)


def resample_cases():
    img = synthetic(13, 9, 3)
    im = Image.fromarray(img, "RGB")
    cases = []
    for box, (ow, oh), crop_first in [((0, 0, 13, 9), (5, 4), False), ((2, 1, 11, 8), (4, 3), False),
                                      ((2, 1, 11, 8), (4, 3), True), ((1.25, 0.5, 11.75, 8.0), (6, 3), False),
                                      ((3, 2, 7, 5), (9, 7), False), ((3, 2, 7, 5), (9, 7), True),
                                      ((0.5, 0.25, 12.5, 8.75), (2, 2), False)]:
        for b in box:
            assert float(np.float32(b)) == b
        out = im.crop(box).resize((ow, oh), Image.BILINEAR) if crop_first else \
            im.resize((ow, oh), Image.BILINEAR, box=box)
        cases.append((box, ow, oh, crop_first, list(np.asarray(out).reshape(-1))))
    return cases


def main():
    print("// Generated by tests/unit/data/gen_crop_cases.py (torchvision %s, torch %s, Pillow %s)."
          % (torchvision.__version__, torch.__version__, Image.__version__))
    print("const RrcCase kRrcCases[] = {")
    for w, h, scale, ratio, used, (i, j, hh, ww) in rrc_cases():
        us = ", ".join(repr(u) for u in used)
        print(f"    {{{w}, {h}, {{{scale[0]!r}, {scale[1]!r}, {ratio[0]!r}, {ratio[1]!r}}}, {{{us}}}, "
              f"{{{i}, {j}, {hh}, {ww}}}}},")
    print("};")
    print("const EvalCase kEvalCases[] = {")
    for c in eval_cases():
        print("    {%d, %d, %d, %d, %d, %d, %d, %d}," % c)
    print("};")
    print("const ResampleCase kResampleCases[] = {")
    for box, ow, oh, crop_first, vals in resample_cases():
        print(f"    {{{{{box[0]!r}, {box[1]!r}, {box[2]!r}, {box[3]!r}}}, {ow}, {oh}, "
              f"{'true' if crop_first else 'false'},\n     {{{', '.join(str(int(v)) for v in vals)}}}}},")
    print("};")


if __name__ == "__main__":
    main()
