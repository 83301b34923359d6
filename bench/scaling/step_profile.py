"""A single-worker step profile: what the scaling model needs from one GPU (or CPU worker).

JSON (bench_model_step --profile-json writes it; synth_profile.py makes the paper's):
  {"model": str, "batch": int, "grad_dtype": "fp32"|"fp16", "forward_s": float,
   "optimizer_s": float (default 0),
   "layers": [ in BACKWARD order:
       {"name": str, "backward_s": float,
        "tensors": [{"name": str, "elems": int, "no_decay": bool}, ...]  (the order backward
                   makes them ready), "grad_bytes": int (optional; checked if given)} ]}
A layer's tensors are ready when its backward ends. Profile.load raises ValueError naming
the file and the field for anything else.
"""
import json
from dataclasses import dataclass, field
from typing import List

DTYPE_BYTES = {"fp16": 2, "bf16": 2, "fp32": 4}


@dataclass
class Tensor:
    name: str
    elems: int
    no_decay: bool
    ready_s: float  # seconds after backward starts


@dataclass
class Profile:
    model: str
    batch: int
    grad_dtype: str
    forward_s: float
    optimizer_s: float
    layer_names: List[str]
    layer_backward_s: List[float]
    tensors_backward: List[Tensor] = field(default_factory=list)  # in readiness order

    @property
    def backward_s(self) -> float:
        return sum(self.layer_backward_s)

    @property
    def step_s(self) -> float:
        return self.forward_s + self.backward_s + self.optimizer_s

    @property
    def tensors_forward(self) -> List[Tensor]:
        return list(reversed(self.tensors_backward))

    def grad_bytes(self, dtype: str = None) -> int:
        return sum(t.elems for t in self.tensors_backward) * DTYPE_BYTES[dtype or self.grad_dtype]

    @staticmethod
    def from_dict(d: dict, where: str = "profile") -> "Profile":
        def need(obj, key, kind, ctx):
            if key not in obj:
                raise ValueError(f"{where}: {ctx} lacks '{key}'")
            v = obj[key]
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
                raise ValueError(f"{where}: {ctx}.{key} must be {kind.__name__}, got {v!r}")
            return v

        dtype = d.get("grad_dtype", "fp32")
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"{where}: grad_dtype '{dtype}'; allowed: {', '.join(DTYPE_BYTES)}")
        p = Profile(model=d.get("model", "?"), batch=need(d, "batch", int, "top level"),
                    grad_dtype=dtype, forward_s=need(d, "forward_s", float, "top level"),
                    optimizer_s=float(d.get("optimizer_s", 0.0)), layer_names=[],
                    layer_backward_s=[])
        if p.batch < 1 or p.forward_s < 0 or p.optimizer_s < 0:
            raise ValueError(f"{where}: batch must be >= 1 and forward_s, optimizer_s >= 0")
        layers = need(d, "layers", list, "top level")
        if not layers:
            raise ValueError(f"{where}: 'layers' is empty")
        t = 0.0
        for i, layer in enumerate(layers):
            ctx = f"layers[{i}]"
            bwd = need(layer, "backward_s", float, ctx)
            if bwd < 0:
                raise ValueError(f"{where}: {ctx}.backward_s is negative ({bwd})")
            t += bwd
            p.layer_names.append(str(layer.get("name", f"layer{i}")))
            p.layer_backward_s.append(bwd)
            elems = 0
            for j, tj in enumerate(need(layer, "tensors", list, ctx)):
                n = need(tj, "elems", int, f"{ctx}.tensors[{j}]")
                if n < 1:
                    raise ValueError(f"{where}: {ctx}.tensors[{j}].elems must be >= 1")
                elems += n
                p.tensors_backward.append(Tensor(str(tj.get("name", f"{ctx}.t{j}")), n,
                                                 bool(tj.get("no_decay", False)), t))
            if "grad_bytes" in layer and layer["grad_bytes"] != elems * DTYPE_BYTES[dtype]:
                raise ValueError(f"{where}: {ctx}.grad_bytes {layer['grad_bytes']} != "
                                 f"{elems} elems x {DTYPE_BYTES[dtype]} bytes ({dtype})")
        if not p.tensors_backward:
            raise ValueError(f"{where}: no layer has parameter tensors")
        return p

    @staticmethod
    def load(path: str) -> "Profile":
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"profile {path}: {e}") from e
        return Profile.from_dict(d, path)
