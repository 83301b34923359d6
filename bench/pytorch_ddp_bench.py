#!/usr/bin/python3
"""PyTorch DDP on the CPU, the same job as dtrain's train_bench: resnet20 on Fashion-MNIST.

The reference row of bench/cpu_vs_pytorch.sh. For each world size W (--workers 1,2) it
spawns W processes (torch.multiprocessing, gloo over 127.0.0.1 on a free port), each
training the resnet20 of worker/model/resnet_arch.cc (CIFAR style: 3x3/1 stem conv 16
channels without bias + BN + ReLU; 3 stages of 3 basic blocks, 16/32/64 channels, stride
2 in the first block of stages 2 and 3, 1x1 conv + BN shortcuts where the shape changes;
global average pool; FC 64->10 with bias; input 1x28x28). Module names are torchvision's,
as dtrain's tensor names are, and the parameter count is printed (dtrain: 272,186).

The same batch (--batch per worker), thread count (torch.set_num_threads(--threads),
one inter-op thread) and data: the first 20,480 Fashion-MNIST training images (as
train_bench's dataset.train_limit), read from the IDX .gz files and normalised by their
mean/std, preloaded as one tensor; each rank's batches are disjoint DistributedSampler-
style slices of a seeded permutation, chosen before the clock starts, so a timed step
holds a tensor index, forward, backward (DDP's allreduce in fp32 buckets overlapped with
it), and the update. Not the same: the loss is cross entropy with label smoothing 0.1
as dtrain's, but the optimizer is SGD (momentum 0.9, lr 0.1, weight decay 5e-5 on
conv/FC weights) where train_bench runs LARS -- the update is a small part of a step
either way; no augmentation here (dtrain pads/crops/flips in its prefetching loader and
counts any wait for it); DDP also runs with W=1 (a one-rank gloo group), dtrain then
uses its local communicator; dtrain's allreduce wire is fp16.

Timing: 3 untimed warm-up steps, a barrier, then --steps timed steps; rank 0 measures
from the barrier to the end of its last step. img_s = W x batch x steps / that time.
cpu_per_wall (rank 0's process CPU time over that wall time) shows the threads really
used, or a rank starved by other load on the machine (below 1 with --threads 1).

  /usr/bin/python3 bench/pytorch_ddp_bench.py [--workers 1,2] [--steps 40] [--threads 1]
                                              [--batch 128] [--json OUT]

Prints one JSON object per world size on stdout (framework, workers, img_s,
img_s_per_worker, threads, torch, ...); --json also writes them all to OUT.
Timings are reported, never asserted.
"""
import argparse
import gzip
import json
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
TRAIN_LIMIT = 20480  # train_bench's dataset.train_limit
WARMUP = 3
SEED = 1


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2", help="comma-separated world sizes (default 1,2)")
    p.add_argument("--steps", type=int, default=40, help="timed steps after %d warm-up steps" % WARMUP)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process (default 1)")
    p.add_argument("--batch", type=int, default=128, help="images per worker per step (default 128)")
    p.add_argument("--data", default=DATA_DIR, help="directory of the Fashion-MNIST IDX .gz files")
    p.add_argument("--json", default="", help="also write the results to this file")
    a = p.parse_args()
    try:
        a.worlds = [int(w) for w in a.workers.split(",") if w]
    except ValueError:
        p.error("--workers: expected comma-separated integers such as 1,2, got %r" % a.workers)
    if not a.worlds or min(a.worlds) < 1:
        p.error("--workers: every world size must be >= 1, got %r" % a.workers)
    if a.steps < 1 or a.threads < 1 or a.batch < 1:
        p.error("--steps, --threads and --batch must be >= 1")
    return a


# ---- data -------------------------------------------------------------------------------

def read_idx(path, ndim):
    """The array of an IDX file (gzip-compressed or not); errors name the file and what was expected."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        sys.exit("%s: not an IDX file of unsigned bytes with %d dimensions (magic 0x000008%02x)"
                 % (path, ndim, ndim))
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        sys.exit("%s: header says %s (%d bytes), the file holds %d bytes after it"
                 % (path, "x".join(map(str, dims)), int(np.prod(dims)), body.size))
    return body.reshape(dims)


def load_fashion_mnist(data_dir, limit):
    """(images N x 1 x 28 x 28 fp32 normalised by their own mean/std, labels N int64)."""
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        sys.exit("fashion-mnist: neither %s/%s.gz nor %s/%s exists (install the dataset-fashion-mnist "
                 "package or pass --data)" % (data_dir, stem, data_dir, stem))

    images = read_idx(find("train-images-idx3-ubyte"), 3)[:limit]
    labels = read_idx(find("train-labels-idx1-ubyte"), 1)[:limit]
    x = images.astype(np.float32) / 255.0
    mean, std = float(x.mean()), max(float(x.std()), 1e-3)  # as dtrain's ComputeNormalization
    x = (x - mean) / std
    return torch.from_numpy(x[:, None, :, :].copy()), torch.from_numpy(labels.astype(np.int64))


def rank_batches(n, world, rank, batch, count, seed):
    """`count` index tensors of `batch` images for `rank`: DistributedSampler-style, a seeded
    permutation per epoch, rank r taking positions r, r+W, ...; no image twice in an epoch."""
    per_rank = n // world
    steps_per_epoch = per_rank // batch
    if steps_per_epoch < 1:
        sys.exit("%d images give rank %d fewer than --batch %d" % (n, rank, batch))
    out, epoch = [], 0
    while len(out) < count:
        g = torch.Generator().manual_seed(seed * 1000003 + epoch)
        mine = torch.randperm(n, generator=g)[rank:per_rank * world:world]
        for s in range(steps_per_epoch):
            if len(out) == count:
                break
            out.append(mine[s * batch:(s + 1) * batch].clone())
        epoch += 1
    return out


# ---- model (worker/model/resnet_arch.cc, resnet20) --------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:  # option B: 1x1 conv stride s + BN
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet20(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, blocks=(3, 3, 3)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        c = 16
        for st, n in enumerate(blocks):
            width = 16 << st
            layer = []
            for bi in range(n):
                layer.append(BasicBlock(c, width, 2 if (bi == 0 and st > 0) else 1))
                c = width
            setattr(self, "layer%d" % (st + 1), nn.Sequential(*layer))
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def param_count(model):
    return sum(p.numel() for p in model.parameters())


# ---- one rank ---------------------------------------------------------------------------

def run_rank(rank, world, port, args, images, labels, results):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(SEED)
    model = ResNet20()
    ddp = nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's weights
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]  # conv and FC weights
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]  # BN and biases (dtrain's no_decay)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-5},
                           {"params": no_decay, "weight_decay": 0.0}], lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    batches = rank_batches(images.shape[0], world, rank, args.batch, WARMUP + args.steps, SEED)
    ddp.train()

    def step(idx):
        x, y = images[idx], labels[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(ddp(x), y)
        loss.backward()
        opt.step()
        return loss

    for i in range(WARMUP):
        step(batches[i])
    dist.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(WARMUP, WARMUP + args.steps):
        loss = step(batches[i])
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    if rank == 0:
        img_s = world * args.batch * args.steps / elapsed
        results.put({"framework": "pytorch", "workers": world, "img_s": round(img_s, 2),
                     "img_s_per_worker": round(img_s / world, 2), "threads": args.threads,
                     "torch": torch.__version__, "batch": args.batch, "steps": args.steps,
                     "step_ms": round(elapsed * 1e3 / args.steps, 2),
                     "cpu_per_wall": round(cpu / elapsed, 2),  # rank 0's CPU time / wall time
                     "final_loss": round(float(loss), 4), "params": param_count(model)})
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = parse_args()
    images, labels = load_fashion_mnist(args.data, TRAIN_LIMIT)
    images.share_memory_()
    labels.share_memory_()
    print("pytorch_ddp_bench: torch %s, resnet20 (%d parameters), %d images, batch %d per worker, "
          "%d threads per worker, %d warm-up + %d timed steps"
          % (torch.__version__, param_count(ResNet20()), images.shape[0], args.batch, args.threads,
             WARMUP, args.steps), file=sys.stderr)
    ctx = mp.get_context("spawn")
    rows = []
    for world in args.worlds:
        results = ctx.SimpleQueue()
        mp.spawn(run_rank, args=(world, free_port(), args, images, labels, results), nprocs=world,
                 join=True)
        row = results.get()
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": rows}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
