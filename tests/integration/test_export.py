"""Weights out and in (issue 15): `dtrain export` writes a job's trained
weights as safetensors under torchvision's names; PyTorch loads them with
load_state_dict(strict=True) and scores exactly what the job reported; a
resnet50 export has every key and shape of torchvision's resnet50 and
nothing else; a job with `init_from` starts at the exported model's accuracy;
bad exports and bad files fail with the reason, writing nothing."""

import gzip
import json
import os
import struct
import subprocess
import unittest

import numpy as np
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock

from cluster import Cluster

FMNIST = os.environ.get("DTRAIN_FMNIST_DIR", "/usr/share/datasets/fashion-mnist")

TRAIN = """
name: export-me
kind: train
workers: 2
seed: 21
model: resnet20
dataset: {name: fashion-mnist, train_limit: 4096, test_limit: 1000}
batch_per_worker: 64
epochs: 2
optimizer: {name: lars}
schedule: {base_lr: 2.0, warmup_epochs: 0.5}
eval_every_epochs: 1
checkpoint: {dir: CKPT}
"""


def read_safetensors(path):
    """The format by hand (8-byte length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


class ResNet20(nn.Module):
    """CIFAR-style resnet20 as dtrain builds it: 3x3 stem, no pool, 16/32/64, option-B shortcuts."""

    def __init__(self, in_channels, classes):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        layers, c = [], 16
        for out, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(3):
                s = stride if i == 0 else 1
                down = None
                if s != 1 or c != out:
                    down = nn.Sequential(nn.Conv2d(c, out, 1, s, bias=False), nn.BatchNorm2d(out))
                blocks.append(BasicBlock(c, out, s, down))
                c = out
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def fmnist_test(train_limit, test_limit):
    """The test images as dtrain's evaluation feeds them: (x/255 - mean) / std, with mean and
    std over the training images in use (worker/data/dataset.cc, ComputeNormalization)."""
    train = idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz"), 16)[:train_limit * 784].astype(np.float64)
    n = train.size
    mean = train.sum() / n / 255.0
    std = max(np.sqrt(max(0.0, (train * train).sum() / n / (255.0 * 255.0) - mean * mean)), 1e-3)
    mean, std = np.float32(mean), np.float32(std)
    images = idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz"), 16)[:test_limit * 784]
    labels = idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz"), 8)[:test_limit]
    x = (images.astype(np.float32) / np.float32(255.0) - mean) / std
    return torch.from_numpy(x.reshape(-1, 1, 28, 28).copy()), torch.from_numpy(labels.astype(np.int64))


class Export(unittest.TestCase):
    def export(self, c, job_id, out, *extra):
        r = c.cli("export", job_id, "-o", out, *extra, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def test_pytorch_scores_the_export_as_the_job_reported_and_init_from_starts_there(self):
        with Cluster(workers=2) as c:
            ckpt = os.path.join(c.dir, "ckpt")
            r = c.cli("submit", c.write_spec("t.yaml", TRAIN.replace("CKPT", ckpt)), "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            job = c.job(r.stdout.strip())
            out = os.path.join(c.dir, "resnet20.safetensors")
            print(self.export(c, job["id"], out).stdout.strip())
            tensors, meta = read_safetensors(out)
            self.assertEqual(meta["job_id"], job["id"])
            self.assertEqual(meta["model"], "resnet20")
            self.assertEqual(int(meta["step"]), int(job["step"]))
            self.assertAlmostEqual(float(meta["eval_accuracy"]), job["eval_accuracy"], places=6)

            model = ResNet20(1, 10)
            model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
            model.eval()
            x, y = fmnist_test(4096, 1000)
            with torch.no_grad():
                correct = int((model(x).argmax(1) == y).sum())
            reported = round(job["eval_accuracy"] * 1000)
            print(f"job reported {reported}/1000; PyTorch on the exported weights: {correct}/1000")
            # fp32 in both; a different summation order may flip one near-tie.
            self.assertLessEqual(abs(correct - reported), 1)

            # init_from: the same data, no learning (LR 1e-9, one step), BN statistics kept
            # near the file's (momentum 0.99): the first evaluation is the exported model's.
            spec = TRAIN.replace("CKPT", os.path.join(c.dir, "ckpt2")) + \
                f"init_from: {out}\nmax_steps: 1\nbn_momentum: 0.99\n"
            spec = spec.replace("base_lr: 2.0", "base_lr: 1.0e-9")
            r = c.cli("submit", c.write_spec("init.yaml", spec), "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            first = c.job(r.stdout.strip())["eval_accuracy"]
            print(f"init_from job's first evaluation: {first:.4f} (exported model {job['eval_accuracy']:.4f}, "
                  f"chance 0.1)")
            self.assertLess(abs(first - job["eval_accuracy"]), 0.01)

            # A file of another model: resnet56 names resnet20 lacks; a truncated file: offset.
            spec56 = spec.replace("model: resnet20", "model: resnet56").replace("init_from: " + out + "\n", "")
            spec56 = spec56.replace("ckpt2", "ckpt56")
            r = c.cli("submit", c.write_spec("r56.yaml", spec56), "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            out56 = os.path.join(c.dir, "resnet56.safetensors")
            self.export(c, r.stdout.strip(), out56)
            for bad, says in ((out56, "does not have: layer1.3."),
                              (self.truncated(out, c.dir), "truncated.safetensors")):
                r = c.cli("submit", c.write_spec("bad.yaml", spec.replace(out, bad)), "--wait", timeout=600)
                self.assertNotEqual(r.returncode, 0)
                failed = c.job(r.stdout.strip())
                self.assertEqual(failed["state"], "FAILED")
                self.assertIn(says, failed["reason"])
                print(f"init_from {os.path.basename(bad)}: FAILED: {failed['reason']}")

    @staticmethod
    def truncated(path, d):
        with open(path, "rb") as f:
            blob = f.read()
        bad = os.path.join(d, "truncated.safetensors")
        with open(bad, "wb") as f:
            f.write(blob[:len(blob) // 2])
        return bad

    def test_resnet50_export_has_exactly_torchvisions_keys_and_shapes(self):
        spec = """
name: r50
kind: train
workers: 1
seed: 3
model: resnet50
dataset: {name: synthetic, classes: 1000, channels: 3, image_size: 32, train_size: 8, test_size: 4}
batch_per_worker: 4
epochs: 1
max_steps: 1
schedule: {warmup_epochs: 0}
allreduce: {backend: local}
checkpoint: {dir: CKPT}
"""
        with Cluster(workers=1) as c:
            r = c.cli("submit", c.write_spec("r50.yaml", spec.replace("CKPT", os.path.join(c.dir, "ckpt"))),
                      "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(c.dir, "r50.safetensors")
            self.export(c, r.stdout.strip(), out)
            tensors, _ = read_safetensors(out)
            want = {k: tuple(v.shape) for k, v in torchvision.models.resnet50().state_dict().items()}
            have = {k: tuple(v.shape) for k, v in tensors.items()}
            self.assertEqual(sorted(set(want) - set(have)), [], "missing")
            self.assertEqual(sorted(set(have) - set(want)), [], "extra")
            self.assertEqual(have, want)
            model = torchvision.models.resnet50()
            model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)

    def test_bad_exports_fail_with_the_reason_and_write_nothing(self):
        spec = TRAIN.replace("checkpoint: {dir: CKPT}\n", "").replace("epochs: 2", "epochs: 1")
        spec += "max_steps: 2\n"
        with Cluster(workers=2) as c:
            r = c.cli("submit", c.write_spec("n.yaml", spec), "--wait", timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(c.dir, "none.safetensors")
            r = c.cli("export", r.stdout.strip(), "-o", out)
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertIn("has no checkpoint to export: its spec has no checkpoint.dir", r.stderr)
            self.assertFalse(os.path.exists(out))
            r = c.cli("export", "job-999999", "-o", out)
            self.assertEqual(r.returncode, 4, r.stderr)
            r = c.cli("export", "job-000001", "-o", c.dir)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("is a directory", r.stderr)
            self.assertEqual([f for f in os.listdir(c.dir) if "safetensors" in f], [])


if __name__ == "__main__":
    unittest.main()
