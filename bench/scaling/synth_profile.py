#!/usr/bin/env python3
"""Synthesize a GPU step profile from a published per-GPU throughput and a measured layer shape.

  python3 bench/scaling/synth_profile.py --shape profiles/resnet50_cpu.json \\
      --images-per-s 1097 --batch 40 --split cpu --hbm-GBps 900 --out P.json

There is no per-layer GPU profile at paper scale, so the step time batch / images_per_s is
split as follows (every choice is a flag):
  optimizer_s = params x --optimizer-bytes-per-param / HBM bandwidth: the update is memory
                bound (fp32 master weight and momentum read and written, fp16 gradient read,
                fp16 weight copy written, norms read weight and gradient again: 26 bytes);
  forward : backward = 1 : 2 (--backward-share 2/3 of the rest): backward computes two
                products per convolution (data and weight gradients) for forward's one;
  backward across layers in proportion to the shape profile's per-layer backward seconds
                (--split cpu, this machine's CPU kernels, which keeps the memory-bound BN,
                ReLU and pooling layers' share) or to backward MACs (--split macs: 2x the
                forward MACs, 1x for the stem conv, which computes no data gradient; BN
                and the rest get none).
Tensors (names, sizes, which layer makes them ready) come from the shape profile unchanged;
the gradient dtype is --grad-dtype (fp16: the paper's and the CUDA engine's wire).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from step_profile import DTYPE_BYTES, Profile  # noqa: E402


def synthesize(shape: dict, images_per_s: float, batch: int, split: str, hbm_Bps: float,
               optimizer_bytes_per_param: float = 26.0, backward_share: float = 2 / 3,
               grad_dtype: str = "fp16", model: str = None) -> dict:
    Profile.from_dict(shape, "shape profile")  # validates
    layers = shape["layers"]
    params = sum(t["elems"] for layer in layers for t in layer["tensors"])
    step = batch / images_per_s
    opt = params * optimizer_bytes_per_param / hbm_Bps if hbm_Bps else 0.0
    if opt >= step:
        raise ValueError(f"optimizer {opt * 1e3:.2f} ms >= the whole step {step * 1e3:.2f} ms")
    bwd_total = (step - opt) * backward_share
    fwd_total = step - opt - bwd_total
    if split == "cpu":
        weights = [layer["backward_s"] for layer in layers]
    elif split == "macs":
        weights = []
        for layer in layers:
            m = float(layer.get("macs_per_image", 0))
            weights.append(m if layer["name"] == "conv1" else 2 * m)
    else:
        raise ValueError(f"split '{split}'; allowed: cpu, macs")
    total = sum(weights)
    if total <= 0:
        raise ValueError(f"the shape profile has no {split} weights to split backward by")
    out_layers = []
    for layer, w in zip(layers, weights):
        elems = sum(t["elems"] for t in layer["tensors"])
        out_layers.append({"name": layer["name"], "backward_s": bwd_total * w / total,
                           "grad_bytes": elems * DTYPE_BYTES[grad_dtype],
                           "tensors": layer["tensors"]})
    return {"model": model or shape.get("model", "?"),
            "source": f"synth_profile.py: {images_per_s:g} images/s at batch {batch}, "
                      f"backward split by {split} ({shape.get('source', 'shape profile')}), "
                      f"optimizer {optimizer_bytes_per_param:g} B/param at "
                      f"{hbm_Bps / 1e9 if hbm_Bps else 0:g} GB/s",
            "batch": batch, "grad_dtype": grad_dtype, "forward_s": fwd_total,
            "backward_s": bwd_total, "optimizer_s": opt, "layers": out_layers}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", required=True, help="a measured profile (bench_model_step)")
    ap.add_argument("--images-per-s", type=float, required=True, help="single-GPU images/s")
    ap.add_argument("--batch", type=int, required=True, help="images per GPU per step")
    ap.add_argument("--split", default="cpu", choices=["cpu", "macs"])
    ap.add_argument("--hbm-GBps", type=float, default=0.0, help="GPU memory bandwidth (0: "
                    "no separate optimizer time)")
    ap.add_argument("--optimizer-bytes-per-param", type=float, default=26.0)
    ap.add_argument("--backward-share", type=float, default=2 / 3)
    ap.add_argument("--grad-dtype", default="fp16", choices=sorted(DTYPE_BYTES))
    ap.add_argument("--model")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        with open(a.shape) as f:
            shape = json.load(f)
        if not (a.images_per_s > 0 and a.batch >= 1 and 0 < a.backward_share < 1):
            raise ValueError("--images-per-s > 0, --batch >= 1, 0 < --backward-share < 1")
        p = synthesize(shape, a.images_per_s, a.batch, a.split, a.hbm_GBps * 1e9,
                       a.optimizer_bytes_per_param, a.backward_share, a.grad_dtype, a.model)
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        print(f"synth_profile.py: {e}", file=sys.stderr)
        return 2
    with open(a.out, "w") as f:
        json.dump(p, f, indent=1)
        f.write("\n")
    print(f"{a.out}: step {(p['forward_s'] + p['backward_s'] + p['optimizer_s']) * 1e3:.2f} ms "
          f"(fwd {p['forward_s'] * 1e3:.2f}, bwd {p['backward_s'] * 1e3:.2f}, opt "
          f"{p['optimizer_s'] * 1e3:.3f}), {len(p['layers'])} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
