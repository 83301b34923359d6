"""dtrain-pack as a real process: an ImageFolder made with Pillow (a few
classes, JPEGs of several modes and sizes, a PNG named .JPEG as ImageNet has,
a non-image extension that is ignored) is packed into shards, which this test
reads back in Python from the layout documented in worker/data/shard_format.h
alone (so the documentation is proven, not just the C++ reader); the shards
hold exactly the folder's (bytes, label) records in the folder's order. A
non-image file named .JPEG stops the pack with exit 2 naming it; --skip-bad
packs the rest and lists it; an output folder that already holds shards is
refused unless --force; bad usage exits 2."""

import io
import os
import random
import shutil
import struct
import subprocess
import tempfile
import unittest
from collections import Counter

from PIL import Image

BIN = os.environ.get("DTRAIN_BIN", os.path.join(os.path.dirname(__file__), "../../build/bin"))
PACK = f"{BIN}/dtrain-pack"
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _CRC_TABLE.append(_c)


def crc32c(data):
    """CRC32C (Castagnoli), bit-reflected, pre- and post-inverted."""
    c = 0xFFFFFFFF
    for x in data:
        c = _CRC_TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def read_shard(path):
    """One .dtshard file, as shard_format.h documents it: (header fields, class names, [(bytes, label)])."""
    with open(path, "rb") as f:
        b = f.read()
    (magic, version, shard, shards, n, first, index_offset, classes, class_bytes, index_crc, zero,
     header_crc) = struct.unpack_from("<8sIIIIQQIIIQI", b, 0)
    assert magic == b"DTRAINSH" and version == 1 and zero == 0, (path, magic, version)
    assert crc32c(b[:60]) == header_crc, path
    assert crc32c(b[index_offset:]) == index_crc, path
    assert len(b) == index_offset + 24 * n + class_bytes, path
    pos, names = index_offset + 24 * n, []
    for _ in range(classes):
        (length,) = struct.unpack_from("<I", b, pos)
        names.append(b[pos + 4:pos + 4 + length].decode())
        pos += 4 + length
    records = []
    for j in range(n):
        offset, length, label, crc, _ = struct.unpack_from("<QIIII", b, index_offset + 24 * j)
        image = b[offset:offset + length]
        assert crc32c(image) == crc, (path, j)
        records.append((image, label))
    return dict(shard=shard, shards=shards, first=first), names, records


def read_split(folder, split):
    """Every shard of `split` in shard order: (class names, [(bytes, label)])."""
    files = sorted(f for f in os.listdir(folder) if f.startswith(split + "-") and f.endswith(".dtshard"))
    assert files, f"no {split} shards in {folder}: {os.listdir(folder)}"
    names, records = None, []
    for k, f in enumerate(files):
        header, shard_names, shard_records = read_shard(os.path.join(folder, f))
        assert (header["shard"], header["shards"], header["first"]) == (k, len(files), len(records)), (f, header)
        assert f == f"{split}-{k:05d}-of-{len(files):05d}.dtshard", f
        assert names in (None, shard_names), f
        names = shard_names
        records += shard_records
    return names, records


def folder_records(root):
    """The ImageFolder's (bytes, label) in torchvision's order (classes, then files, sorted)."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    out = []
    for label, c in enumerate(classes):
        for f in sorted(os.listdir(os.path.join(root, c))):
            if f.lower().endswith(EXTENSIONS):
                with open(os.path.join(root, c, f), "rb") as fh:
                    out.append((fh.read(), label))
    return classes, out


def encode(image, fmt, **kw):
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(rng, mode, size):
    bands = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    return Image.frombytes(mode, size, rng.randbytes(size[0] * size[1] * bands))


class Pack(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dtrain-pack-")
        self.input = os.path.join(self.tmp, "imagenet")
        self.output = os.path.join(self.tmp, "shards")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, rel, data):
        path = os.path.join(self.input, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def make_imagenet(self):
        """train: 3 classes, ~2 MiB (two or more 1-MiB shards); val: 2 classes, a few small images."""
        rng = random.Random(1903)
        for k in range(8):  # ~240 KiB each: noise compresses badly
            self.write(f"train/n01/img_{k}.JPEG", encode(noise(rng, "RGB", (448 + 8 * k, 448)), "JPEG", quality=95))
        for k in range(5):
            self.write(f"train/n02/img_{k}.JPEG", encode(noise(rng, "L", (64, 48 + k)), "JPEG", quality=80))
        self.write("train/n02/progressive.JPEG",
                   encode(noise(rng, "RGB", (300, 200)), "JPEG", quality=90, progressive=True))
        self.write("train/n03/cmyk.JPEG", encode(noise(rng, "CMYK", (40, 30)), "JPEG"))
        self.write("train/n03/png_named.JPEG", encode(noise(rng, "RGB", (33, 17)), "PNG"))  # as in ImageNet
        self.write("train/n03/notes.txt", b"not an image, and ignored: not an image extension")
        self.write("val/n01/v.JPEG", encode(noise(rng, "RGB", (20, 20)), "JPEG"))
        self.write("val/n02/v.png", encode(noise(rng, "L", (9, 7)), "PNG"))

    def pack(self, *args, timeout=120):
        return subprocess.run([PACK, "--input", self.input, "--output", self.output, *args], capture_output=True,
                              text=True, timeout=timeout)

    def shard_files(self):
        return sorted(os.listdir(self.output)) if os.path.isdir(self.output) else []

    def test_shards_read_in_python_from_the_documented_layout_equal_the_folder(self):
        self.make_imagenet()
        r = self.pack("--shard-mb", "1", "--threads", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        for split in ("train", "val"):
            classes, expected = folder_records(os.path.join(self.input, split))
            names, got = read_split(self.output, split)
            self.assertEqual(names, classes, split)
            self.assertEqual(Counter(got), Counter(expected), split)  # the (bytes, label) multiset
            self.assertEqual(got, expected, split)  # and the folder's order: shard record k == folder record k
            self.assertIn(f"{split}: {len(expected)} records, {len(classes)} classes,", r.stdout)
        train_shards = [f for f in self.shard_files() if f.startswith("train-")]
        self.assertGreaterEqual(len(train_shards), 2, train_shards)
        for f in train_shards:
            self.assertLessEqual(os.path.getsize(os.path.join(self.output, f)), 1 << 20, f)
        self.assertEqual([f for f in self.shard_files() if not f.endswith(".dtshard")], [])  # no temporaries left
        self.assertIn("packed 2 splits into", r.stdout)

    def test_a_non_image_file_stops_the_pack_with_exit_2_naming_it(self):
        self.make_imagenet()
        bad = self.write("train/n02/fake.JPEG", b"<html>404 Not Found</html>")
        r = self.pack()
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"{bad}: not a JPEG or PNG image", r.stderr)
        self.assertIn("JPEG and PNG files only", r.stderr)
        self.assertIn("--skip-bad", r.stderr)
        self.assertEqual(self.shard_files(), [])  # neither shards nor temporaries

    def test_skip_bad_packs_the_rest_and_lists_what_it_skipped(self):
        self.make_imagenet()
        bad = self.write("train/n02/fake.JPEG", b"<html>404 Not Found</html>")
        empty = self.write("val/n01/empty.jpg", b"")
        r = self.pack("--skip-bad", "--splits", "train,val")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skipped 2 files (--skip-bad):", r.stdout)
        self.assertIn(f"  {bad}: not a JPEG or PNG image", r.stdout)
        self.assertIn(f"  {empty}: not a JPEG or PNG image", r.stdout)
        os.remove(bad)
        os.remove(empty)
        for split in ("train", "val"):
            classes, expected = folder_records(os.path.join(self.input, split))
            self.assertEqual(read_split(self.output, split), (classes, expected), split)

    def test_an_output_folder_holding_shards_is_refused_unless_force(self):
        self.make_imagenet()
        self.assertEqual(self.pack("--splits", "val").returncode, 0)
        before = self.shard_files()
        r = self.pack("--splits", "val")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(f"--output {self.output} already holds {len(before)} shard files", r.stderr)
        self.assertIn("--force", r.stderr)
        self.assertEqual(self.shard_files(), before)
        # --force replaces the shards of the splits it packs.
        r = self.pack("--splits", "val,train", "--shard-mb", "1", "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        for split in ("train", "val"):
            classes, expected = folder_records(os.path.join(self.input, split))
            self.assertEqual(read_split(self.output, split), (classes, expected), split)

    def test_bad_usage_and_bad_input_exit_2_saying_what_was_wrong(self):
        self.make_imagenet()
        cases = [
            (["--bogus"], "--bogus"),
            (["--splits", "train,test"], os.path.join(self.input, "test") + ": no such image folder"),
            (["--splits", "train,../x"], "split '../x' is not allowed"),
            (["--shard-mb", "0"], "--shard-mb 0: allowed 1 .. 1048576"),
        ]
        for args, says in cases:
            r = self.pack(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(says, r.stderr, args)
        r = subprocess.run([PACK, "--output", self.output], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--input", r.stderr)
        self.write("flat/a.JPEG", encode(Image.new("RGB", (4, 4)), "JPEG"))
        r = subprocess.run([PACK, "--input", self.input, "--output", self.output, "--splits", "flat"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no class folders", r.stderr)
        self.assertEqual(self.shard_files(), [])


if __name__ == "__main__":
    unittest.main()
