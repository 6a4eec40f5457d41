"""Multi-GPU and multi-node: DDP by default for several devices, exact DDP evaluation, SLURM configs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only
from omegaconf import DictConfig

from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.tasks.train import train
from p3m.utils.distributed import dataloader_workers, devices_per_node, effective_batch_size, scaled_lr
from tests.cli import read_json, run_train_cli
from tests.conftest import TINY_SYNTHETIC, tiny_data_overrides

SLURM_RANK_5_OF_8 = {
    "SLURM_NTASKS": "8",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_PROCID": "5",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_JOB_NAME": "train",
    "SLURM_JOB_ID": "4242",
    "SLURM_NODELIST": "gpu[07-08]",
}


def test_several_devices_train_with_ddp_and_sync_batchnorm(compose_config: Callable[..., DictConfig]) -> None:
    # the default trainer: strategy auto and SyncBatchNorm on (4 GPUs would read trainer.devices=4)
    cfg = compose_config("train", ["trainer.accelerator=cpu", "trainer.devices=2"])
    assert cfg.trainer.strategy == "auto" and cfg.trainer.sync_batchnorm is True
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer.strategy, DDPStrategy) and trainer.world_size == 2
    assert isinstance(trainer.strategy._layer_sync, TorchSyncBatchNorm)

    off = compose_config(
        "train", ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.sync_batchnorm=false"]
    )
    assert hydra.utils.instantiate(off.trainer, logger=False).strategy._layer_sync is None
    single = hydra.utils.instantiate(
        compose_config("train", ["trainer.accelerator=cpu"]).trainer, logger=False
    )
    assert isinstance(single.strategy, SingleDeviceStrategy)  # sync_batchnorm: true is a no-op here
    # torch's SyncBatchNorm runs on GPUs only: the CPU trainer turns it off
    assert compose_config("train", ["trainer=cpu"]).trainer.sync_batchnorm is False


def test_workers_and_batch_size_rules() -> None:
    assert dataloader_workers(8, processes_per_node=4, cpus=16) == 3  # one CPU per rank for training
    assert dataloader_workers(2, processes_per_node=1, cpus=16) == 2  # the request is a maximum
    assert dataloader_workers(8, processes_per_node=2, cpus=2) == 0  # no CPU left: load in the main process
    assert devices_per_node([0, 1, 3]) == 3 and devices_per_node("0,1") == 2 and devices_per_node(4) == 4
    assert effective_batch_size(2, 4, 1) == 8  # 4 GPUs x batch 2 keeps the paper's batch and lr
    assert effective_batch_size(8, 4, 2, accumulate_grad_batches=2) == 128
    assert scaled_lr(32) == pytest.approx(4e-5) and scaled_lr(8) == pytest.approx(1e-5)


def test_slurm_launcher_and_environment_compose(
    compose_config: Callable[..., DictConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = [
        "hydra/launcher=slurm",
        "trainer=slurm",
        "hydra.launcher.partition=gpu",
        "trainer.accelerator=cpu",
    ]
    cfg = compose_config("train", overrides)
    launcher_cfg = cfg.hydra.launcher
    assert (launcher_cfg.nodes, launcher_cfg.gpus_per_node, launcher_cfg.tasks_per_node) == (2, 4, 4)
    assert launcher_cfg.partition == "gpu" and launcher_cfg.timeout_min == 4320
    launcher = hydra.utils.instantiate(launcher_cfg)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["nodes"] == 2 and launcher.params["tasks_per_node"] == 4
    assert launcher.params["submitit_folder"].endswith(".submitit/%j")

    # what a task started by srun sees: Lightning reads rank and world from SLURM's variables
    for key, value in SLURM_RANK_5_OF_8.items():
        monkeypatch.setenv(key, value)
    # the trainer marks this process as rank 5 for rank_zero_only: undo that after the test
    monkeypatch.setattr(rank_zero_only, "rank", rank_zero_only.rank)
    monkeypatch.setattr(utils_rank_zero_only, "rank", utils_rank_zero_only.rank)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False)
    env = trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue and env.creates_processes_externally
    assert (trainer.world_size, trainer.global_rank, trainer.node_rank, trainer.local_rank) == (8, 5, 1, 1)


# ------------------------------------------------------------------------------------------------
# Exact evaluation under DDP: 3 images per split on 2 ranks, so a padding sampler would repeat one.


@pytest.fixture(scope="module")
def uneven_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset with 3 evaluation images per split (odd: uneven over 2 ranks)."""
    params = {**TINY_SYNTHETIC, "num_test": 3}
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("uneven"), **params)


def _uneven_overrides(root: Path) -> list[str]:
    return [
        *[o for o in tiny_data_overrides(root) if not o.startswith("data.synthetic.num_test")],
        "backbone=smoke",
        "data.synthetic.num_test=3",
    ]


def _test_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k.startswith("test/")}


@pytest.mark.slow
def test_ddp_evaluation_equals_one_process(
    compose_config: Callable[..., DictConfig], uneven_synthetic: Path, tmp_path: Path
) -> None:
    data = _uneven_overrides(uneven_synthetic)
    # one process: train a step, then test the checkpoint (all ten metrics on all 3 + 3 images)
    fit = [
        *data,
        "debug=limit",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=1",
        "logger=csv",
        "test=true",
    ]
    single = _test_metrics(train(compose_config("train", fit)))
    assert {"test/p/sad", "test/np/conn", "test/p/sad_privacy", "test/np_minus_p/sad"} <= single.keys()
    checkpoint = next((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))

    # two processes (gloo): the same checkpoint, the same test
    evaluate = [*data, "train=false", "test=true", f"ckpt_path={checkpoint}", "callbacks=none", "~logger"]
    result = run_train_cli([*evaluate, "trainer.devices=2", "trainer.strategy=ddp"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Starting with 2 processes" in result.stdout + result.stderr
    # quiet: no advice to sync the values the evaluator reduced (one per test metric before), no tips; the
    # one warning left is real: callbacks=none, but the checkpoint holds a ModelCheckpoint's state
    warned = [line for line in result.stderr.splitlines() if re.match(r"\S+\.py:\d+: ", line)]
    assert "💡" not in result.stdout + result.stderr
    assert all("callbacks used to create the checkpoint" in line for line in warned), warned
    (metrics_file,) = (tmp_path / "logs" / "train" / "runs").glob("*/metrics.json")
    ddp = _test_metrics(read_json(metrics_file))
    assert ddp.keys() == single.keys()
    for name, value in single.items():
        assert ddp[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
    assert single["test/np_minus_p/sad"] == pytest.approx(single["test/np/sad"] - single["test/p/sad"])


def test_eval_sampler_splits_without_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    from p3m.data import datamodule

    monkeypatch.setattr(datamodule.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(datamodule.dist, "get_world_size", lambda: 2)
    seen = []
    for rank in (0, 1):
        monkeypatch.setattr(datamodule.dist, "get_rank", lambda rank=rank: rank)
        seen.append(list(datamodule.eval_sampler(list(range(5)), "P3M-500-P")))
    assert seen == [[0, 2, 4], [1, 3]]  # every image once; no padding
    with pytest.raises(ValueError, match="P3M-500-P has 1 images but the run has 2 processes"):
        datamodule.eval_sampler([0], "P3M-500-P")


def test_eval_loaders_are_plain_on_one_process(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path
) -> None:
    cfg = compose_config("train", tiny_data_overrides(tiny_synthetic))
    datamodule = hydra.utils.instantiate(cfg.data, require_fg_bg=False)
    loaders = datamodule.val_dataloader()
    assert [type(dl.sampler).__name__ for dl in loaders] == ["SequentialSampler", "SequentialSampler"]
