#!/usr/bin/env python3
"""PyTorch reference for dtrain's GPU training throughput: torchvision ResNet-50 (v1.5)
on synthetic 224x224 images, one GPU, the same run that dtrain's own engine is
compared with on the device machine (bench/gpu_device_run.sh).

Each variant: AMP fp16 autocast with a GradScaler, channels_last, SGD with momentum
0.9 and weight decay 5e-5, label smoothing 0.1 (the recipe of shared/RECIPE.md);
warm-up steps, then timed steps between torch.cuda.synchronize() calls. Variants:
"eager" and "compile" (torch.compile of the model; its compile time is kept out of
the timing by the warm-up and reported apart). Prints a table and writes JSON.

  python3 bench/pytorch_resnet50.py [--batch 256] [--steps 50] [--warmup 15]
                                    [--variants eager,compile] [--json out.json]

Needs PyTorch with CUDA and torchvision. Timings are reported, never asserted.
"""
import argparse
import json
import platform
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256, help="images per step (default 256)")
    p.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=15,
                   help="untimed steps first (compile, cuDNN autotuning, allocator)")
    p.add_argument("--variants", default="eager,compile",
                   help="comma-separated: eager, compile (default both)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--json", default="", help="write the results here as JSON")
    return p.parse_args()


def run_variant(name, args, torch, torchvision):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=args.classes)
    model = model.to(dev, memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-5)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    scaler = torch.amp.GradScaler("cuda")
    step_model = torch.compile(model) if name == "compile" else model

    # Synthetic data already on the device (as a data loader with pinned buffers and
    # a copy stream would leave it): the bench measures compute, not input.
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=dev)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            out = step_model(x)
            loss = loss_fn(out, y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t0

    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    step_ms = elapsed * 1e3 / args.steps
    result = {
        "variant": name,
        "batch": args.batch,
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "warmup_seconds": round(warmup_s, 3),
        "images_per_second": round(args.batch * args.steps / elapsed, 1),
        "step_ms": round(step_ms, 3),
        "final_loss": float(loss.detach().float().item()),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }
    del step_model, model, opt, x, y
    torch.cuda.empty_cache()
    return result


def main():
    args = parse_args()
    try:
        import torch
        import torchvision
    except ImportError as e:
        print(f"pytorch_resnet50: needs torch and torchvision: {e}", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("pytorch_resnet50: no CUDA device visible to PyTorch", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        if v not in ("eager", "compile"):
            print(f"pytorch_resnet50: unknown variant '{v}' (allowed: eager, compile)",
                  file=sys.stderr)
            return 2

    env = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
    }
    print(f"# {env['device']}; torch {env['torch']}, torchvision {env['torchvision']}, "
          f"CUDA {env['cuda']}, cuDNN {env['cudnn']}", flush=True)

    results = []
    for v in variants:
        try:
            r = run_variant(v, args, torch, torchvision)
        except Exception as e:  # one failing variant (e.g. compile) must not hide the others
            r = {"variant": v, "batch": args.batch, "error": f"{type(e).__name__}: {e}"}
        results.append(r)
        print(f"# {v}: {json.dumps(r)}", flush=True)

    print()
    print(f"| {'variant':<8} | {'batch':>5} | {'images/s':>9} | {'step ms':>8} | {'warmup s':>8} |")
    print(f"| {'-' * 8} | {'-' * 5}: | {'-' * 8}: | {'-' * 7}: | {'-' * 7}: |")
    for r in results:
        if "error" in r:
            print(f"| {r['variant']:<8} | {r['batch']:>5} | {'failed':>9} | {'':>8} | {'':>8} |  {r['error']}")
        else:
            print(f"| {r['variant']:<8} | {r['batch']:>5} | {r['images_per_second']:>9.1f} | "
                  f"{r['step_ms']:>8.2f} | {r['warmup_seconds']:>8.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"bench": "pytorch_resnet50", "env": env, "args": vars(args),
                       "results": results}, f, indent=2)
            f.write("\n")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
