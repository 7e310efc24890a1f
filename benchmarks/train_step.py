"""Training-step throughput on the CPU: patches/s of the engine's U-Net under variants.

Runs real training steps (forward, BCE, backward, AdamW) of `build_network` on random
patches for a fixed time per variant, and writes benchmarks/results/train_step.json (or --json):
patches/s per variant (threads, batch, memory format, bfloat16 autocast, torch.compile,
data-parallel replicas) plus the machine. Each variant runs in its own process so thread settings and compiled graphs do not
leak between them. This is where the defaults' `batch_size` and `channels_last` come from.

    .venv/bin/python benchmarks/train_step.py [--seconds 10] [--json PATH]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see medloop_ml/__init__

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# (name, threads, width, patch, batch, channels_last, bf16, compile, replicas)
VARIANTS: list[tuple[str, int, int, int, int, bool, bool, bool, int]] = [
    ("previous default: NCHW, batch 8", 2, 8, 128, 8, False, False, False, 1),
    ("NCHW, batch 8, 1 thread", 1, 8, 128, 8, False, False, False, 1),
    ("channels_last, batch 8", 2, 8, 128, 8, True, False, False, 1),
    ("channels_last, batch 16, one replica", 2, 8, 128, 16, True, False, False, 1),
    ("channels_last, 2 replicas of batch 8", 2, 8, 128, 8, True, False, False, 2),
    ("channels_last, 2 replicas of batch 16 (default)", 2, 8, 128, 16, True, False, False, 2),
    ("channels_last, batch 32", 2, 8, 128, 32, True, False, False, 1),
    ("channels_last, batch 16, 1 thread", 1, 8, 128, 16, True, False, False, 1),
    ("channels_last, batch 16, bf16 autocast", 2, 8, 128, 16, True, True, False, 1),
    ("channels_last, batch 16, torch.compile", 2, 8, 128, 16, True, False, True, 1),
    ("channels_last, batch 4, patch 256", 2, 8, 256, 4, True, False, False, 1),
    ("channels_last, batch 16, width 16", 2, 16, 128, 16, True, False, False, 1),
]


def measure(threads: int, width: int, patch: int, batch: int, channels_last: bool, bf16: bool,
            compiled: bool, replicas: int, seconds: float) -> dict[str, float]:
    """Patches/s of full training steps; the first steps (and compilation) are not counted.
    With `replicas` > 1 that many copies of the network each train on their own `batch` in
    their own thread with threads // replicas intra-op threads (medloop_ml.replicas); patches
    count all replicas' batches."""
    import contextlib

    import torch
    from medloop_ml.network import build_network
    from medloop_ml.replicas import CpuReplicas
    from medloop_ml.train import BceDiceLoss, TrainConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, channels=width, patch_size=patch, batch_size=batch)
    model = build_network(config).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = BceDiceLoss(0.0)  # BCE alone: the thin-target default
    copies = CpuReplicas(model, replicas, max(1, threads // replicas)) if replicas > 1 else None
    models = copies.models if copies is not None else [model]
    forwards = [torch.compile(m) if compiled else m for m in models]
    x = torch.rand(batch, 3, patch, patch).contiguous(memory_format=fmt)
    local = torch.randn(batch, 3, patch, patch).contiguous(memory_format=fmt)
    y = (torch.rand(batch, 1, patch, patch) > 0.9).float()

    def replica_step(i: int) -> tuple[float, torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forwards[i](x, local)
        loss = loss_fn(logits.float(), y) / replicas
        loss.backward()
        return float(loss.detach()), torch.zeros(3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if copies is not None:
            copies.step(replica_step)
        else:
            replica_step(0)
        optimizer.step()

    with copies if copies is not None else contextlib.nullcontext():
        warm = time.perf_counter()
        for _ in range(3):
            step()
        warm = time.perf_counter() - warm
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            steps += 1
        elapsed = time.perf_counter() - start
    return {"patches_per_second": steps * batch * replicas / elapsed, "steps": steps,
            "warmup_seconds": warm}


def run_variant(variant: tuple[Any, ...], seconds: float) -> dict[str, Any]:
    name, threads, width, patch, batch, channels_last, bf16, compiled, replicas = variant
    args = json.dumps([threads, width, patch, batch, channels_last, bf16, compiled, replicas,
                       seconds])
    out = subprocess.run([sys.executable, __file__, "--one", args], check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {"variant": name, "threads": threads, "width": width, "patch": patch, "batch": batch,
            "channels_last": channels_last, "bf16_autocast": bf16, "torch_compile": compiled,
            "replicas": replicas,
            **result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per variant")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/train_step.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one variant in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return 0
    rows = []
    for variant in VARIANTS:
        row = run_variant(variant, args.seconds)
        rows.append(row)
        print(f"{row['variant']:<44} {row['patches_per_second']:7.1f} patches/s", flush=True)
    import torch
    from chase_fewshot import cpu_model  # same folder

    report = {
        "benchmark": "train_step",
        "measured_seconds_per_variant": args.seconds,
        "variants": rows,
        "load_average": os.getloadavg(),
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__},
        "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                    "logical_cpus": os.cpu_count()},
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
