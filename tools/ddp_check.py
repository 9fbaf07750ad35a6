"""DDP check, run under torchrun: process group, a few DistributedDataParallel training steps of a
tiny FCN-8s on random data, and an all-reduced confusion matrix; writes a JSON of what ran.

    torchrun --standalone --nproc_per_node 1 tools/ddp_check.py --out ddp-check.json          # NCCL on the GPU
    torchrun --standalone --nproc_per_node 1 tools/ddp_check.py --backend gloo --device cpu   # the CPU path

Without torchrun, set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT yourself.
Exit status 0 if every check passed, 1 if one failed (the JSON says which), 2 for bad arguments.
Rank 0 writes the JSON (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path

SCHEMA = "fcnlib-ddp-check/1"
ENV_NAMES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ddp_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["auto", "nccl", "gloo"], default="auto",
                   help="process-group backend (auto: nccl on a GPU, gloo on the CPU)")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--steps", type=int, default=5, help="DDP training steps")
    p.add_argument("--batch", type=int, default=4, help="images per rank and step")
    p.add_argument("--size", type=int, default=96, help="image height and width, px")
    p.add_argument("--width", type=float, default=0.125, help="channel width of the FCN-8s")
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--timeout-s", type=float, default=60.0, help="process-group timeout")
    p.add_argument("--out", default=None, help="JSON file to write (rank 0); default: print only")
    args = p.parse_args(argv)
    for name in ("steps", "batch", "size", "classes"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if not args.width > 0 or not args.timeout_s > 0:
        p.error("--width and --timeout-s must be positive")
    if args.backend == "nccl" and args.device == "cpu":
        p.error("--backend nccl needs --device cuda")
    return args


def _fcnlib_importable() -> None:
    """Let ``python tools/ddp_check.py`` find fcnlib in the checkout when it is not installed."""
    try:
        import fcnlib  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_check(args: argparse.Namespace, record: dict) -> bool:
    import torch
    import torch.distributed as dist
    from torch import nn

    _fcnlib_importable()
    from fcnlib.config import TrainConfig
    from fcnlib.engine import Context, make_optimizer, train_step
    from fcnlib.losses import SegmentationLoss
    from fcnlib.metrics import SegmentationMetric
    from fcnlib.models import fcn8s

    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    want = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if want == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch.cuda.is_available() is False")
    device = torch.device("cuda", local_rank) if want == "cuda" else torch.device("cpu")
    backend = args.backend if args.backend != "auto" else ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        record["gpu"] = torch.cuda.get_device_name(device)
        try:
            v = torch.cuda.nccl.version()
            record["nccl_version"] = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception as exc:  # noqa: BLE001 - informational only
            record["nccl_version"] = f"unknown ({type(exc).__name__})"
    record.update(backend=backend, device=str(device))

    t0 = time.perf_counter()
    dist.init_process_group(backend, timeout=timedelta(seconds=args.timeout_s))
    record["init_s"] = time.perf_counter() - t0
    record["process_group"] = {"backend": dist.get_backend(), "world_size": dist.get_world_size(),
                               "rank": dist.get_rank()}
    checks: dict[str, bool] = {}

    ones = torch.full((1,), float(rank + 1), device=device)
    dist.all_reduce(ones)
    checks["all_reduce_sum"] = float(ones) == world * (world + 1) / 2

    amp = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    ctx = Context(device, rank, world, amp)
    record["amp"] = str(amp).replace("torch.", "") if amp else "off"
    torch.manual_seed(0)
    model = fcn8s(args.classes, head="light", width=args.width, batch_norm=True).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model.parameters(), TrainConfig(lr=0.01), device)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    criterion = SegmentationLoss().to(device)
    g = torch.Generator().manual_seed(1000 + rank)  # every rank its own data, as DistributedSampler gives
    images = masks = None
    losses = []
    t0 = time.perf_counter()
    ddp.train()
    for _ in range(args.steps):
        images = torch.randn(args.batch, 3, args.size, args.size, generator=g)
        masks = torch.randint(0, args.classes, (args.batch, args.size, args.size), generator=g)
        losses.append(train_step(ddp, images, masks, criterion, optimizer, scaler, ctx, channels_last))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    record["steps_s"] = time.perf_counter() - t0
    record["losses"] = [float(v) for v in losses]
    checks["losses_finite"] = all(v == v and abs(v) != float("inf") for v in record["losses"])

    # DDP averaged the gradients: the weights must be identical on every rank.
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    checks["weights_in_sync"] = bool(torch.equal(lo, hi))

    # The dataset-level confusion matrix: SegmentationMetric.all_reduce against an all_gather sum.
    model.eval()
    with torch.no_grad(), ctx.autocast():
        logits = model(images.to(device)).float()
    metric = SegmentationMetric(args.classes, validate=False)
    metric.update(logits, masks.to(device))
    local = metric.matrix.clone()
    metric.all_reduce(device)
    gathered = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    expected = torch.stack(gathered).sum(0)
    checks["confusion_all_reduced"] = bool(torch.equal(metric.matrix, expected))
    pixels = int(metric.matrix.sum())
    checks["confusion_counts_every_pixel"] = pixels == world * args.batch * args.size * args.size
    result = metric.compute()
    record["confusion"] = {"device": str(metric.matrix.device), "dtype": str(metric.matrix.dtype).replace("torch.", ""),
                           "pixels": pixels, "pixAcc": result["pixAcc"], "mIoU": result["mIoU"]}
    dist.barrier()
    record["checks"] = checks
    return all(checks.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [k for k in ENV_NAMES if k not in os.environ]
    if missing:
        print(f"ddp_check.py: error: run under torchrun (missing environment: {', '.join(missing)})", file=sys.stderr)
        return 2
    import torch

    rank = int(os.environ["RANK"])
    record: dict = {
        "schema": SCHEMA, "ok": False, "world_size": int(os.environ["WORLD_SIZE"]), "rank": rank,
        "local_rank": int(os.environ["LOCAL_RANK"]), "torch": torch.__version__, "cuda": torch.version.cuda,
        "python": platform.python_version(), "host": platform.node(),
        "settings": {k: getattr(args, k) for k in ("backend", "device", "steps", "batch", "size", "width", "classes")},
        "model": {"name": "fcn8s", "head": "light", "batch_norm": True, "width": args.width},
        "errors": [],
    }
    t0 = time.perf_counter()
    try:
        record["ok"] = run_check(args, record)
    except Exception as exc:  # noqa: BLE001 - the JSON says what failed
        record["errors"].append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
        record["traceback"] = traceback.format_exc()[-3000:]
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception as exc:  # noqa: BLE001
                record["errors"].append(f"destroy_process_group: {type(exc).__name__}: {exc}")
    record["wall_s"] = time.perf_counter() - t0
    if rank == 0:
        text = json.dumps(record, indent=2, allow_nan=True) + "\n"
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
        print(text, end="")
    if not record["ok"]:
        print(f"ddp_check.py: rank {rank}: check failed: {record['errors'] or record.get('checks')}", file=sys.stderr)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
