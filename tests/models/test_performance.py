"""Precision, memory layout, compilation and activation checkpointing: they run, stay finite, and keep the
maths (speed itself is measured in bench/, not here)."""

from __future__ import annotations

import functools
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from lightning import Trainer
from torch.utils.data import DataLoader

from p3m.models import P3MNet, performance
from p3m.models.losses import P3MLoss
from p3m.models.p3m_module import P3MLitModule
from p3m.models.performance import compile_in_place, enable_activation_checkpointing
from tests.conftest import REPO_ROOT

SIZE = 64


def tiny_batch(n: int = 2, size: int = SIZE, seed: int = 0) -> dict[str, torch.Tensor]:
    """A collated training batch with every key the paper's loss reads."""
    gen = torch.Generator().manual_seed(seed)
    alpha = torch.rand(n, 1, size, size, generator=gen)
    trimap = torch.full_like(alpha, 128.0)
    trimap[alpha < 0.2], trimap[alpha > 0.8] = 0.0, 255.0
    return {
        "image": torch.randn(n, 3, size, size, generator=gen),
        "alpha": alpha,
        "trimap": trimap,
        "fg": torch.randn(n, 3, size, size, generator=gen),
        "bg": torch.randn(n, 3, size, size, generator=gen),
    }


def make_module(backbone: str = "resnet34", **kwargs: object) -> P3MLitModule:
    torch.manual_seed(0)
    return P3MLitModule(
        net=P3MNet(backbone),
        loss=P3MLoss(),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        **kwargs,
    )


def fit_one_step(module: P3MLitModule, precision: str) -> Trainer:
    batch = tiny_batch()
    samples = [{key: value[i] for key, value in batch.items()} for i in range(2)]
    trainer = Trainer(
        accelerator="cpu",
        precision=precision,
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=DataLoader(samples, batch_size=2))
    return trainer


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_training_step_runs_under_each_precision_and_layout(precision: str, channels_last: bool) -> None:
    module = make_module(channels_last=channels_last)
    before = {name: p.detach().clone() for name, p in module.net.named_parameters()}
    trainer = fit_one_step(module, precision)
    loss = trainer.callback_metrics["train/loss/total"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)  # losses in fp32 under autocast
    changed = 0
    for name, param in module.net.named_parameters():
        assert param.dtype == torch.float32 and torch.isfinite(param).all(), name  # fp32 master weights
        changed += int(not torch.equal(param, before[name]))
    assert changed > 0.9 * len(before)  # the optimiser step reached (nearly) every parameter
    conv = module.net.backbone.stem[0].weight if hasattr(module.net.backbone, "stem") else None
    if conv is not None and conv.ndim == 4:
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_bf16_loss_is_close_to_fp32_on_the_same_batch() -> None:
    module = make_module()
    batch = tiny_batch()
    fp32 = module.loss(module.net(batch["image"]), batch)["total"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = module.loss(module.net(batch["image"]), batch)
    assert bf16["total"].dtype == torch.float32
    assert torch.isfinite(bf16["total"])
    # bf16 keeps 8 mantissa bits; on the total of a random-init net that is well under 2%
    assert abs(bf16["total"].item() - fp32.item()) < 0.02 * abs(fp32.item())


def test_channels_last_forward_matches_contiguous() -> None:
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        reference = net(image)
        net = net.to(memory_format=torch.channels_last)
        ours = net(image.contiguous(memory_format=torch.channels_last))
    # the fused matte can jump at max-pool near-ties; the local matte is continuous in the features
    assert torch.allclose(ours.local_alpha, reference.local_alpha, atol=1e-3)
    assert torch.allclose(ours.global_logits, reference.global_logits, atol=1e-3, rtol=1e-3)


def test_sixteen_mixed_becomes_bf16_on_cpu() -> None:
    with pytest.warns(UserWarning, match="bf16"):
        trainer = Trainer(accelerator="cpu", precision="16-mixed", logger=False, enable_checkpointing=False)
    assert trainer.precision == "bf16-mixed"


@pytest.mark.slow
@pytest.mark.no_cover  # coverage's line tracer slows dynamo's Python tracing by half (performance.md)
def test_compile_smoke_matches_eager() -> None:
    torch.manual_seed(0)
    net = P3MNet("resnet34").eval()
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        eager = net(image)
        keys = list(net.state_dict())
        # inductor codegen of the whole net takes minutes on 2 cores (bench/ runs it); aot_eager traces
        # the same graph (dynamo + AOTAutograd, max_unpool2d included) in seconds
        compile_in_place(net, {"backend": "aot_eager", "fullgraph": True})
        compiled = net(image)
    assert list(net.state_dict()) == keys  # compiled in place: checkpoints keep their keys
    assert torch.allclose(compiled.local_alpha, eager.local_alpha, atol=1e-4)
    assert torch.allclose(compiled.global_logits, eager.global_logits, atol=1e-3, rtol=1e-3)


def test_compile_false_leaves_the_network_alone() -> None:
    net = P3MNet("resnet34")
    assert compile_in_place(net, False) is net
    assert getattr(net, "_compiled_call_impl", None) is None


@pytest.mark.slow
def test_activation_checkpointing_keeps_gradients() -> None:
    torch.manual_seed(0)
    net = P3MNet("swin")
    image = torch.randn(1, 3, SIZE, SIZE)
    torch.manual_seed(1)  # the same stochastic-depth draws in both passes (checkpoint replays them)
    net(image).fusion_alpha.sum().backward()
    reference = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    keys = list(net.state_dict())
    assert enable_activation_checkpointing(net) == 12  # Swin-T: 2 + 2 + 6 + 2 blocks
    assert enable_activation_checkpointing(net) == 12  # idempotent
    assert list(net.state_dict()) == keys
    torch.manual_seed(1)
    net(image).fusion_alpha.sum().backward()
    for name, grad in reference.items():
        assert torch.allclose(net.get_parameter(name).grad, grad, atol=1e-5, rtol=1e-4), name


def test_activation_checkpointing_on_resnet_is_a_no_op() -> None:
    assert enable_activation_checkpointing(P3MNet("resnet34")) == 0


def test_model_config_exposes_the_switches(compose_config) -> None:
    cfg = compose_config("train", ["model.channels_last=true", "model.activation_checkpointing=true"])
    assert cfg.model.channels_last is True
    assert cfg.model.compile is False
    assert cfg.model.activation_checkpointing is True


def _bench_memory():
    """bench/bench_memory.py as a module (bench/ is scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_memory.py"
    spec = importlib.util.spec_from_file_location("bench_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_memory_bench_measures_a_training_step() -> None:
    bench = _bench_memory()
    result = bench.measure_step("resnet34", size=SIZE, batch=1)
    # in this (shared) process the step may reuse memory freed earlier, so only its sign is certain
    assert result["peak_mib"] >= result["before_mib"] > 0
    assert result["increase_mib"] >= 0
    assert result["checkpointed_blocks"] == 0
    assert torch.isfinite(torch.tensor(result["loss"]))
    configs = bench.configurations(["resnet34", "swin"], ["fp32"])
    assert [(c["backbone"], c["checkpointing"]) for c in configs] == [
        ("resnet34", False),
        ("swin", False),
        ("swin", True),
    ]


RESIDENT_AFTER_A_FREE = """
import os, sys
import numpy as np
from p3m.utils.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
before = resident()
block = np.ones(8 * 2**20)  # a 64 MiB activation, freed at the end of the step
del block
print((resident() - before) // 2**20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (a no-op elsewhere)")
def test_freed_memory_is_kept_for_reuse() -> None:
    def kept_mib(mode: str) -> int:
        result = subprocess.run(
            [sys.executable, "-c", RESIDENT_AFTER_A_FREE, mode], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return int(result.stdout)

    assert kept_mib("default") < 8  # glibc unmapped the block: the next step maps and faults it again
    assert kept_mib("keep") >= 60  # kept mapped: the next allocation reuses its pages


def test_bf16_on_a_cpu_without_it_is_warned(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    cpu_trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")))
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: False)
    for precision, warned in (("bf16-mixed", True), ("32-true", False)):
        caplog.clear()
        performance.warn_if_bf16_is_emulated(SimpleNamespace(**vars(cpu_trainer), precision=precision))
        assert ("trainer.precision=32" in caplog.text) is warned, caplog.text
    monkeypatch.setattr(performance, "cpu_has_native_bf16", lambda: True)
    caplog.clear()
    performance.warn_if_bf16_is_emulated(SimpleNamespace(**vars(cpu_trainer), precision="bf16-mixed"))
    assert not caplog.text
