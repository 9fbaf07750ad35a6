"""Checks that need a CUDA GPU (marker ``cuda``); every test is skipped on a machine without one.

``tools/gpu_check.sh`` runs them on a lent GPU machine (``python -m pytest -m cuda
tests/test_cuda.py``). This file imports only torch, pytest and fcnlib (the GPU machine has no
Jupyter stack). Correctness only: speed and memory figures belong to ``fcnlib bench``.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fcnlib.config import TrainConfig
from fcnlib.context import setup_context
from fcnlib.engine import train, train_step
from fcnlib.optim import make_optimizer
from fcnlib.trained import model_from_checkpoint
from fcnlib.losses import SegmentationLoss
from fcnlib.metrics import SegmentationMetric, confusion_matrix
from fcnlib.models import fcn8s
from fcnlib.predict import predict

NO_GPU_REASON = "needs a CUDA GPU (tools/gpu_check.sh runs these on a GPU machine)"

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU_REASON)]

ROOT = Path(__file__).resolve().parents[1]


def colour_coded_batch(batch=2, size=128, num_classes=21, seed=0):
    """Images whose colour gives the label (quadrants of classes 0..3, a few ignored pixels):
    learnable in a few steps, so a training step that works makes the loss go down."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    quadrant = (ys >= size // 2).long() * 2 + (xs >= size // 2).long()  # 0..3
    masks = quadrant.expand(batch, size, size).clone()
    palette = torch.tensor([[1.5, -1.0, -1.0], [-1.0, 1.5, -1.0], [-1.0, -1.0, 1.5], [1.0, 1.0, -1.0]])
    images = palette[masks].permute(0, 3, 1, 2).contiguous() + 0.2 * torch.randn(batch, 3, size, size, generator=g)
    masks[:, ::9, ::11] = 255
    assert num_classes > 3
    return images, masks


def test_bf16_channels_last_train_steps_lower_the_loss():
    ctx = setup_context("cuda", "bf16")
    assert ctx.device.type == "cuda" and ctx.amp_dtype == torch.bfloat16
    torch.manual_seed(0)
    model = fcn8s(21, batch_norm=True).to(ctx.device, memory_format=torch.channels_last)  # full width, paper head
    cfg = TrainConfig(lr=0.01, momentum=0.9, weight_decay=5e-4)  # configs/camvid.yaml's SGD
    optimizer = make_optimizer(model.parameters(), cfg, ctx.device)
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # bf16 needs no loss scaling
    criterion = SegmentationLoss().to(ctx.device)
    images, masks = colour_coded_batch()
    model.train()
    losses = [train_step(model, images, masks, criterion, optimizer, scaler, ctx, channels_last=True)
              for _ in range(6)]
    values = [float(v) for v in losses]
    assert all(math.isfinite(v) for v in values), values
    assert values[-1] < values[0], f"loss did not go down over 6 steps on one fixed batch: {values}"
    assert model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast: bf16 compute, fp32 weights
    with torch.no_grad(), ctx.autocast():
        logits = model(images.to(ctx.device).contiguous(memory_format=torch.channels_last))
    assert logits.dtype == torch.bfloat16 and tuple(logits.shape) == (2, 21, 128, 128)


def test_metric_on_the_gpu_equals_the_cpu_result():
    g = torch.Generator().manual_seed(1)
    num_classes = 21
    logits = torch.randn(3, num_classes, 97, 131, generator=g)  # odd sizes, continuous values: no argmax ties
    target = torch.randint(0, num_classes, (3, 97, 131), generator=g)
    target[:, ::7, ::5] = 255
    results = {}
    for device in ("cpu", "cuda"):
        metric = SegmentationMetric(num_classes, per_image=True)
        metric.update(logits.to(device), target.to(device))
        metric.update(logits[:1].to(device), target[:1].to(device))
        assert metric.matrix.device.type == device  # accumulated where the inputs are
        results[device] = metric.compute()
    cpu, gpu = results["cpu"], results["cuda"]
    assert torch.equal(cpu["confusion"], gpu["confusion"])
    assert int(cpu["confusion"].sum()) == int((target != 255).sum() + (target[:1] != 255).sum())
    for key in ("pixAcc", "meanAcc", "mIoU", "fwIoU", "pixAcc_per_image", "mIoU_per_image"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-12, abs=1e-15), key
    assert torch.allclose(cpu["IoU"], gpu["IoU"], rtol=1e-12, atol=0, equal_nan=True)

    pred = logits.argmax(1)
    for validate in (True, False):
        on_gpu = confusion_matrix(pred.cuda(), target.cuda(), num_classes, validate=validate)
        assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.int64
        assert torch.equal(on_gpu.cpu(), confusion_matrix(pred, target, num_classes))


def test_predict_a_5472x3648_photo_full_width_default_mode():
    torch.manual_seed(0)
    model = fcn8s(21).cuda()  # untrained, full width, paper head
    g = torch.Generator().manual_seed(2)
    photo = torch.randint(0, 256, (3648, 5472, 3), dtype=torch.uint8, generator=g).numpy()
    labels = predict(model, photo, device="cuda", progress=False)  # mode "auto": "scaled" above 1 MP
    assert tuple(labels.shape) == (3648, 5472)
    assert labels.dtype == torch.int64 and labels.device.type == "cpu"
    assert 0 <= int(labels.min()) and int(labels.max()) < 21
    assert next(model.parameters()).device.type == "cuda"


def test_checkpoint_written_on_the_gpu_loads_on_a_cpu_only_machine(tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(data="shapes", width=0.0625, crop_size=64, limit_train=16, limit_val=4, batch_size=4,
                      epochs=1, device="cuda", workers=0, out=str(out))
    result = train(cfg, progress=False)
    assert math.isfinite(result.best_miou)
    for name in ("best.pt", "last.pt"):
        model, ckpt = model_from_checkpoint(out / name)
        assert ckpt["config"]["device"] == "cuda" and ckpt["epoch"] == 1
        assert all(t.device.type == "cpu" for t in model.state_dict().values())
        with torch.no_grad():
            logits = model.eval()(torch.randn(1, 3, 70, 90))
        assert tuple(logits.shape) == (1, ckpt["num_classes"], 70, 90) and torch.isfinite(logits).all()
    # In a process that sees no GPU at all (CUDA_VISIBLE_DEVICES=""), as on a CPU-only machine.
    code = (
        "import sys, torch\n"
        "from fcnlib.trained import model_from_checkpoint\n"
        "assert not torch.cuda.is_available()\n"
        "model, ckpt = model_from_checkpoint(sys.argv[1])\n"
        "y = model.eval()(torch.randn(1, 3, 64, 64))\n"
        "assert y.shape == (1, ckpt['num_classes'], 64, 64) and bool(torch.isfinite(y).all())\n"
        "print('loaded on cpu')\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", code, str(out / "best.pt")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "loaded on cpu" in proc.stdout, proc.stderr[-2000:]


def test_torch_compile_runs_a_training_step():
    # Last in the file: the slowest test (compilation), so a time limit cuts nothing else.
    ctx = setup_context("cuda", "bf16")
    torch.manual_seed(0)
    model = fcn8s(21, batch_norm=True).to(ctx.device, memory_format=torch.channels_last)
    criterion = SegmentationLoss().to(ctx.device)
    images, masks = colour_coded_batch(batch=2, size=96)
    x = images.to(ctx.device).contiguous(memory_format=torch.channels_last)
    y = masks.to(ctx.device)
    model.train()
    with torch.no_grad(), ctx.autocast():
        eager_loss = float(criterion(model(x).float(), y))
    optimizer = make_optimizer(model.parameters(), TrainConfig(lr=0.01), ctx.device)
    compiled = torch.compile(model)
    loss = float(train_step(compiled, images, masks, criterion, optimizer,
                            torch.amp.GradScaler("cuda", enabled=False), ctx))
    assert math.isfinite(loss)
    assert loss == pytest.approx(eager_loss, rel=3e-2), (loss, eager_loss)  # same weights, same batch, bf16
