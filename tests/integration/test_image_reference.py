"""Our JPEG/PNG decoder and crop boxes (worker/data/image_decode.h, crop_box.h, driven
through the image_probe tool) against the live references a PyTorch user's data loader
runs: Pillow's decode and BILINEAR resize, and torchvision 0.14's RandomResizedCrop and
Resize + CenterCrop, on a small ImageNet-shaped folder of real photographs
(tests/data/make_photo_folder.py: 3 classes x 20 train + 5 val, with greyscale, CMYK,
PNG-named-.JPEG and progressive files). Needs Debian's python3-pil, python3-torchvision
and numpy; DTRAIN_BUILD_DIR (set by ctest) names the build with tests/image_probe."""

import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF
from torchvision.transforms import transforms as tv_transforms

HERE = os.path.dirname(os.path.abspath(__file__))
MAKE_FOLDER = os.path.join(HERE, "..", "data", "make_photo_folder.py")
BUILD = os.environ.get("DTRAIN_BUILD_DIR", "")
TOL = 2  # per channel, uint8: Pillow and libjpeg-turbo differ in IDCT/upsampling rounding, not more


def log(msg):
    print(f"    {msg}", file=sys.stderr, flush=True)


class Probe:
    def __init__(self, exe, tmp):
        self.exe, self.tmp, self.n = exe, tmp, 0

    def run(self, *args, stdin=None):
        r = subprocess.run([self.exe, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=120)
        return r

    def ok(self, *args, stdin=None):
        r = self.run(*args, stdin=stdin)
        if r.returncode != 0:
            raise AssertionError(f"image_probe {' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def decode(self, path, mode, w, h):
        c = 3 if mode == "rgb" else 1
        self.n += 1
        out = os.path.join(self.tmp, f"out{self.n}.raw")
        printed = self.ok("decode", path, mode, out).split()
        assert printed == [str(w), str(h), str(c)], printed
        a = np.fromfile(out, dtype=np.uint8).reshape((h, w, c))
        os.unlink(out)
        return a if c == 3 else a[:, :, 0]

    def crop(self, path, box, out_w, out_h, flip, dct, mode="rgb", crop_first=False):
        c = 3 if mode == "rgb" else 1
        self.n += 1
        out = os.path.join(self.tmp, f"out{self.n}.raw")
        self.ok("crop", path, *(repr(float(v)) for v in box), out_w, out_h, int(flip), int(dct), mode, out,
                int(crop_first))
        a = np.fromfile(out, dtype=np.uint8).reshape((out_h, out_w, c))
        os.unlink(out)
        return a


def pil_kind(path):
    with Image.open(path) as im:
        if im.format == "PNG":
            return "png"
        if im.mode == "L":
            return "grey"
        if im.mode == "CMYK":
            return "cmyk"
        return "progressive" if im.info.get("progressive") else "rgb"


class ImageReference(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        exe = os.path.join(BUILD, "tests", "image_probe")
        if not BUILD or not os.path.exists(exe):
            raise AssertionError(f"image_probe not found at '{exe}': build the image_probe target and set "
                                 "DTRAIN_BUILD_DIR to the build directory (ctest does)")
        cls.tmp = tempfile.mkdtemp(prefix="dtrain-imgref-")
        folder = os.path.join(cls.tmp, "photos")
        r = subprocess.run([sys.executable, MAKE_FOLDER, folder, "--classes", "3", "--per-class", "20",
                            "--val-per-class", "5", "--seed", "7"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"make_photo_folder.py failed: {r.stderr}")
        cls.files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith(".JPEG"))
        cls.kinds = {f: pil_kind(f) for f in cls.files}
        cls.probe = Probe(exe, cls.tmp)
        log(f"{len(cls.files)} files: " + ", ".join(
            f"{k} {sum(1 for v in cls.kinds.values() if v == k)}" for k in ("rgb", "grey", "cmyk", "png",
                                                                               "progressive")))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_folder_has_every_kind_of_file_the_decoder_must_handle(self):
        self.assertEqual(set(self.kinds.values()), {"rgb", "grey", "cmyk", "png", "progressive"})

    def test_header_matches_pillow(self):
        comps = {"L": 1, "RGB": 3, "CMYK": 4}
        for f in self.files:
            with Image.open(f) as im:
                want = f"{'png' if im.format == 'PNG' else 'jpeg'} {im.width} {im.height} {comps[im.mode]}"
            self.assertEqual(self.probe.ok("info", f).strip(), want, f)

    def _full_decode_vs_pillow(self, mode, reference, what):
        worst, notes = {}, []
        for f in self.files:
            with Image.open(f) as im:
                w, h = im.size
                ref = np.asarray(reference(im), dtype=np.int16)
            got = self.probe.decode(f, mode, w, h).astype(np.int16)
            diff = np.abs(got - ref)
            d, k = int(diff.max()), self.kinds[f]
            worst[k] = max(worst.get(k, 0), d)
            if d > TOL:
                notes.append(f"{os.path.basename(f)} ({k}): max {d}, {100 * float((diff > TOL).mean()):.3f} % of "
                             f"values over {TOL}, mean {float(diff.mean()):.3f}")
        log(f"max |ours {mode} - {what}| per kind: " + ", ".join(f"{k} {v}" for k, v in sorted(worst.items())))
        self.assertEqual(notes[:8], [], f"{len(notes)} of {len(self.files)} files differ by more than {TOL}")

    def test_full_rgb_decode_equals_pillow_convert_rgb_within_2(self):
        self._full_decode_vs_pillow("rgb", lambda im: im.convert("RGB"), "Pillow convert('RGB')")

    def test_full_grey_decode_equals_pillow_within_2(self):
        # image_decode.h: grey of a YCbCr JPEG is libjpeg's luma, i.e. Pillow's
        # draft('L'); of anything else (grey and CMYK JPEGs, PNGs) Pillow's convert('L').
        def reference(im):
            if im.format == "JPEG" and im.mode == "RGB":
                im.draft("L", im.size)
                self.assertEqual(im.mode, "L", "Pillow's draft('L') did not switch to luma decoding")
                return im
            return im.convert("L")

        self._full_decode_vs_pillow("grey", reference, "Pillow draft('L') / convert('L')")
        # How far luma is from what convert('L') gives (reported, not asserted: it is
        # large only where the YCbCr -> RGB conversion clips saturated colours).
        worst = 0
        for f in self.files:
            if self.kinds[f] in ("rgb", "progressive"):
                with Image.open(f) as im:
                    w, h = im.size
                    ref = np.asarray(im.convert("L"), dtype=np.int16)
                worst = max(worst, int(np.abs(self.probe.decode(f, "grey", w, h).astype(np.int16) - ref).max()))
        log(f"colour JPEGs, ours grey vs Pillow convert('L') instead: max {worst}")

    def test_crop_resize_without_dct_equals_pillow_resize_box_and_torchvision_resized_crop_within_2(self):
        rng = random.Random(11)
        worst = worst_cf = 0
        for n, f in enumerate(self.files):
            with Image.open(f) as im:
                img = im.convert("RGB")
            w, h = img.size
            # shrink (most RandomResizedCrops of ImageNet images), upscale (small boxes), fractional edges
            bw = [rng.uniform(240, w), rng.uniform(20, 200), rng.uniform(100, w)][n % 3]
            bh = [rng.uniform(240, h), rng.uniform(20, 200), rng.uniform(100, h)][n % 3]
            x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            if n % 2 == 0:
                x0, y0, bw, bh = int(x0), int(y0), int(bw), int(bh)
            box = (x0, y0, x0 + bw, y0 + bh)
            ref = img.resize((224, 224), Image.BILINEAR, box=box)
            for flip in (False, True):
                want = np.asarray(ref.transpose(Image.FLIP_LEFT_RIGHT) if flip else ref, dtype=np.int16)
                got = self.probe.crop(f, box, 224, 224, flip, dct=False).astype(np.int16)
                d = int(np.abs(got - want).max())
                worst = max(worst, d)
                self.assertLessEqual(d, TOL, f"{f} box {box} flip {flip}: differs from Pillow resize by {d}")
            if n % 2 == 0:  # integer box: torchvision's RandomResizedCrop path, crop then resize
                want = np.asarray(TF.resized_crop(img, y0, x0, bh, bw, [224, 224]), dtype=np.int16)
                got = self.probe.crop(f, box, 224, 224, False, dct=False, crop_first=True).astype(np.int16)
                d = int(np.abs(got - want).max())
                worst_cf = max(worst_cf, d)
                self.assertLessEqual(d, TOL, f"{f} box {box}: crop_first differs from torchvision resized_crop by {d}")
        log(f"max |ours - Pillow resize(224x224, BILINEAR, box)| incl. flips: {worst}; "
            f"crop_first vs torchvision resized_crop: {worst_cf}")

    def test_random_resized_crop_boxes_equal_torchvision_get_params(self):
        # torchvision's get_params runs unmodified on a fake image of each size. Its
        # torch.empty(1).uniform_(a, b) draws are real torch arithmetic (float32, torch's
        # CPU kernel) from the seeded generator; each draw's underlying U[0,1) value is read
        # first (uniform_(0, 1) from the same generator state, which is exact) and handed to
        # our side. torch.randint(0, n) returns floor(u * n) of the test's own u (torch's
        # modulo of a 32-bit draw is not a function of one U[0,1) value), as crop_box.h defines.
        real_torch = torch

        class Recorder:
            def __init__(self):
                self.draws, self.rng = [], None

        rec = Recorder()

        class RecordingTensor:
            def __init__(self, shape):
                self.shape = shape

            def uniform_(self, a, b):
                state = real_torch.get_rng_state()
                u = real_torch.empty(self.shape).uniform_(0, 1).item()
                real_torch.set_rng_state(state)
                v = real_torch.empty(self.shape).uniform_(a, b)
                rec.draws.append(u)
                return v

        class TorchProxy:
            def __getattr__(self, name):
                return getattr(real_torch, name)

            @staticmethod
            def empty(*shape, **kw):
                return RecordingTensor(shape)

            @staticmethod
            def randint(low, high, size):
                u = rec.rng.random()
                rec.draws.append(u)
                return real_torch.tensor([low + math.floor(u * (high - low))])

        cases, lines, want = random.Random(5), [], []
        saved = tv_transforms.torch
        tv_transforms.torch = TorchProxy()
        try:
            for i in range(2000):
                kind = i % 5
                if kind == 0:    # ImageNet-like
                    w, h = cases.randint(300, 600), cases.randint(250, 500)
                elif kind == 1:  # tiny
                    w, h = cases.randint(1, 12), cases.randint(1, 12)
                elif kind == 2:  # extreme aspect: the fallback centre crop
                    w, h = (cases.randint(500, 3000), cases.randint(1, 40))
                    if cases.random() < 0.5:
                        w, h = h, w
                else:
                    w, h = cases.randint(1, 2000), cases.randint(1, 2000)
                if kind == 4:    # other scale/ratio ranges
                    s0 = cases.uniform(0.01, 0.9)
                    s1 = cases.uniform(s0, 1.0)
                    r0 = cases.uniform(0.2, 1.0)
                    r1 = cases.uniform(r0, 5.0)
                    scale, ratio = (s0, s1), (r0, r1)
                else:
                    scale, ratio = (0.08, 1.0), (3.0 / 4.0, 4.0 / 3.0)
                real_torch.manual_seed(1000 + i)
                rec.draws, rec.rng = [], random.Random(2000 + i)
                img = real_torch.empty(1, 1, 1).expand(1, h, w)
                top, left, bh, bw = tv_transforms.RandomResizedCrop.get_params(img, list(scale), list(ratio))
                want.append(f"{top} {left} {bh} {bw}")
                lines.append(" ".join([str(w), str(h), *(repr(float(v)) for v in (*scale, *ratio)),
                                       *(repr(u) for u in rec.draws)]))
        finally:
            tv_transforms.torch = saved
        got = self.probe.ok("rrc", "-", stdin="\n".join(lines) + "\n").split("\n")
        bad = [(lines[i], want[i], got[i]) for i in range(len(want)) if got[i] != want[i]]
        fallback = sum(1 for ln in lines if len(ln.split()) == 6 + 20)  # W H 4 params, 10 tries x 2 draws
        log(f"RandomResizedCrop: {len(want)} cases ({fallback} took the fallback), {len(bad)} differ")
        self.assertEqual(bad[:5], [], "W H scale ratio draws | torchvision top left h w | ours")

    def test_eval_box_equals_torchvision_resize_256_center_crop_224(self):
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
        worst = 0
        for f in self.files:
            with Image.open(f) as im:
                img = im.convert("RGB")
            w, h = img.size
            box = [float(v) for v in self.probe.ok("evalbox", w, h, 256, 224).split()]
            want = np.asarray(tf(img), dtype=np.int16)
            got = self.probe.crop(f, box, 224, 224, flip=False, dct=False).astype(np.int16)
            d = int(np.abs(got - want).max())
            worst = max(worst, d)
            self.assertLessEqual(d, TOL, f"{f} ({w}x{h}) box {box}: differs from Resize(256)+CenterCrop(224) by {d}")
        log(f"max |ours - torchvision Resize(256)+CenterCrop(224)|: {worst}")

    def test_dct_scaled_crop_stays_close_to_the_full_resolution_path(self):
        # DCT scaling replaces the first part of the antialiasing low-pass (the triangle
        # filter over full-resolution pixels) by the IDCT's own M/8 reduction; both are
        # estimates of the same area average and differ in edge and texture detail near
        # the output's Nyquist limit. Measured on this folder: mean |diff| ~0.5 over the
        # scaled crops (worst crop ~3.6, at M = 1 into 32x32), about what re-encoding
        # these files at quality 90 changes (mean ~0.6); a box off by 4 output pixels
        # gives ~12. Mean < 3 (and < 6 per crop) allows the filter difference and
        # catches a wrong box mapping or scale. ChooseDctScale scales only when the box
        # is >= 2x the output (M in 1, 2, 4), so on these ImageNet-sized files the
        # outputs are mostly below 224 (as in a low-resolution training phase).
        rng = random.Random(3)
        means, scales = [], {}  # means: crops that were DCT-scaled (M < 8; M = 8 is the same decode)
        for n, f in enumerate(self.files):
            if self.kinds[f] == "png":
                continue
            with Image.open(f) as im:
                w, h = im.size
            out = (32, 64, 112, 128, 160, 224)[n % 6]
            bw = min(w, int(rng.uniform(0.5, 1.0) * w))
            bh = min(h, int(bw * rng.uniform(0.75, 1.333)))
            x0, y0 = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
            box = (x0, y0, x0 + bw, y0 + bh)
            m = int(self.probe.ok("dctscale", bw, bh, out, out))
            scales[m] = scales.get(m, 0) + 1
            full = self.probe.crop(f, box, out, out, False, dct=False, crop_first=True).astype(np.int16)
            dct = self.probe.crop(f, box, out, out, False, dct=True, crop_first=True).astype(np.int16)
            mean = float(np.abs(full - dct).mean())
            if m == 8:
                self.assertEqual(mean, 0.0, f"{f} box {box} -> {out}x{out}: M = 8 must be the full-resolution decode")
                continue
            means.append(mean)
            self.assertLess(mean, 6.0, f"{f} box {box} -> {out}x{out} (scale {m}/8): mean |dct - full| = {mean:.2f}")
        self.assertGreaterEqual(len(means), 10, f"only {len(means)} crops were DCT-scaled ({scales}): too few to judge")
        log(f"DCT-scaled vs full resolution: mean |diff| {np.mean(means):.2f} (worst crop {max(means):.2f}) "
            f"over the {len(means)} scaled crops; scales M/8 used: {dict(sorted(scales.items()))}")
        self.assertLess(float(np.mean(means)), 3.0)

    def test_corrupt_and_truncated_files_fail_with_a_message_naming_the_file(self):
        jpeg = next(f for f in self.files if self.kinds[f] == "rgb")
        png = next(f for f in self.files if self.kinds[f] == "png")
        with open(jpeg, "rb") as fh:
            jb = fh.read()
        with open(png, "rb") as fh:
            pb = fh.read()
        sof = jb.find(b"\xff\xc0")
        bad_sof = bytearray(jb)
        bad_sof[sof + 5:sof + 9] = b"\x00\x00\x00\x00"  # height 0, width 0
        cases = {
            "truncated.JPEG": jb[:len(jb) // 2],
            "header-only.JPEG": jb[:200],
            "zero-size.JPEG": bytes(bad_sof),
            "garbage.JPEG": bytes(random.Random(1).getrandbits(8) for _ in range(4000)),
            "empty.JPEG": b"",
            "truncated-png.JPEG": pb[:len(pb) // 2],
        }
        words = ("jpeg", "png", "truncat", "corrupt", "premature", "not an image", "empty", "zero", "unknown",
                 "unsupported")
        for name, data in cases.items():
            path = os.path.join(self.tmp, name)
            with open(path, "wb") as fh:
                fh.write(data)
            out = os.path.join(self.tmp, name + ".raw")
            for args in (["decode", path, "rgb", out],
                         ["crop", path, 0, 0, 100, 100, 224, 224, 0, 1, "rgb", out]):
                r = self.probe.run(*args)
                self.assertEqual(r.returncode, 1, f"{name}: {args[0]} exit {r.returncode}, stderr {r.stderr!r}")
                self.assertIn(name, r.stderr, f"{name}: the message must name the file")
                self.assertTrue(any(w in r.stderr.lower() for w in words), f"{name}: unhelpful message {r.stderr!r}")
                self.assertFalse(os.path.exists(out), f"{name}: an output was written for a bad file")
            log(f"{name}: {r.stderr.strip()}")


if __name__ == "__main__":
    unittest.main()
