"""The device-slot rule of parallel sweeps: each joblib worker its own GPUs, the other trials wait."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from p3m.utils import device_slots
from p3m.utils.device_slots import DeviceSlots


def test_gpus_are_split_into_slots_of_a_trials_devices() -> None:
    gpus = ["0", "1", "2", "3"]
    assert device_slots.device_slots(gpus, 1) == [["0"], ["1"], ["2"], ["3"]]
    assert device_slots.device_slots(gpus, 2) == [["0", "1"], ["2", "3"]]
    assert device_slots.device_slots(["4", "6", "7"], 2) == [["4", "6"]]  # GPU 7 alone is no slot
    assert device_slots.device_slots(gpus, 4) == [gpus]
    assert device_slots.device_slots(["0"], 2) == [] and device_slots.device_slots([], 1) == []


def test_each_process_claims_a_free_slot_and_the_next_waits_for_one(tmp_path: Path) -> None:
    slots = [["0"], ["1"]]
    first = device_slots._claim(tmp_path, slots)
    second = device_slots._claim(tmp_path, slots)  # another lock of the same file: another holder
    assert first[:2] == (0, ["0"]) and second[:2] == (1, ["1"])
    os.close(first[2])  # the first holder ends: its slot is free again
    third = device_slots._claim(tmp_path, slots, poll_s=0.01)
    assert third[:2] == (0, ["0"])
    for held in (second, third):
        os.close(held[2])


def test_parallel_trials_are_capped_at_the_gpu_slots(
    compose_config: Callable[..., DictConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    for devices, n_jobs, capped in ((1, 8, 4), (2, 4, 2), (2, 1, 1)):
        cfg = compose_config(
            "train",
            ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={n_jobs}", f"trainer.devices={devices}"],
        )
        DeviceSlots().on_multirun_start(cfg)
        assert cfg.hydra.launcher.n_jobs == capped
    on_cpu = compose_config("train", ["hydra/launcher=parallel", "hydra.launcher.n_jobs=8", "trainer=cpu"])
    DeviceSlots().on_multirun_start(on_cpu)
    assert on_cpu.hydra.launcher.n_jobs == 8  # CPU trials take no GPU slot


def test_sweeps_give_joblib_workers_their_slots(compose_config: Callable[..., DictConfig]) -> None:
    callbacks = compose_config("train", []).hydra.callbacks
    assert callbacks.device_slots._target_ == "p3m.utils.device_slots.DeviceSlots"
