"""Checkpoint files: one safe loader that names the file and the cause, atomic saves, ``latest``."""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from p3m.models.checkpoint_io import SafeCheckpointIO
from p3m.models.checkpoints import load_checkpoint_state
from p3m.tasks.convert import convert_official_checkpoint
from p3m.utils.checkpoint_files import _LEGACY_MAGIC, CheckpointError, read_checkpoint
from p3m.utils.run_dirs import find_checkpoint, resolve_ckpt_path

UNSAFE_HINTS = ("weights_only=False", "weights_only` set to `False", "weights_only set to False")


class _RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """A good checkpoint and the broken kinds a user meets, each with the phrase its error must hold."""
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, good)
    files = {"good": good}
    for name, data in {
        "empty": b"",
        "truncated": good.read_bytes()[: good.stat().st_size // 2],
        "random": random.Random(0).randbytes(4096),
        "text": b"not a checkpoint\n",
    }.items():
        files[name] = tmp_path / f"{name}.ckpt"
        files[name].write_bytes(data)
    files["code"] = tmp_path / "code.ckpt"
    torch.save({"state_dict": {}, "payload": _RunsCode()}, files["code"])
    return files


EXPECTED = {
    "empty": "is empty",
    "truncated": "truncated or damaged",
    "random": "is not a PyTorch checkpoint",
    "text": "is not a PyTorch checkpoint",
    "code": "refused for safety",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_broken_file_is_named_with_its_cause(kind: str, bad_files: dict[str, Path]) -> None:
    path = bad_files[kind]
    for read in (
        read_checkpoint,
        load_checkpoint_state,
        lambda p: convert_official_checkpoint(p, p.parent / "o"),
    ):
        with pytest.raises(CheckpointError, match=EXPECTED[kind]) as info:
            read(path)
        message = str(info.value)
        assert str(path) in message and not any(hint in message for hint in UNSAFE_HINTS), message
    assert not (path.parent / "o").exists()


@pytest.mark.parametrize("header", [b"", _LEGACY_MAGIC], ids=["no-header", "legacy-header"])
def test_random_bytes_always_get_a_named_error(header: bytes, tmp_path: Path) -> None:
    """Random bytes fail in the unpickler in many ways (IndexError, KeyError, ...): one message each."""
    expected = "truncated or damaged" if header else "is not a PyTorch checkpoint"
    path = tmp_path / "noise.ckpt"
    for seed in range(100):
        path.write_bytes(header + random.Random(seed).randbytes(2048))
        with pytest.raises(CheckpointError, match=expected):
            read_checkpoint(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path / 'absent.ckpt'}: does not exist"):
        read_checkpoint(tmp_path / "absent.ckpt")


def test_lightning_resume_reads_through_the_safe_loader(bad_files: dict[str, Path]) -> None:
    io = SafeCheckpointIO()
    assert torch.equal(io.load_checkpoint(bad_files["good"])["state_dict"]["w"], torch.zeros(1000))
    with pytest.raises(CheckpointError, match="refused for safety"):
        io.load_checkpoint(bad_files["code"])
    with pytest.raises(ValueError, match="only read with weights_only=True"):
        io.load_checkpoint(bad_files["good"], weights_only=False)


def _run_dir(log_dir: Path, name: str) -> Path:
    folder = log_dir / "train" / "runs" / name / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def test_latest_skips_files_that_do_not_load(
    bad_files: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log_dir = tmp_path / "logs"
    old = _run_dir(log_dir, "old")
    (old / "last.ckpt").write_bytes(bad_files["good"].read_bytes())
    new = _run_dir(log_dir, "new")
    (new / "epoch_003.ckpt").write_bytes(bad_files["good"].read_bytes())
    (new / "last.ckpt").write_bytes(bad_files["truncated"].read_bytes())  # the full disk's leftover
    os.utime(old / "last.ckpt", (1, 1))  # the oldest

    assert find_checkpoint(log_dir, "train", "last") == new / "epoch_003.ckpt"
    assert f"skipping checkpoint {new / 'last.ckpt'} is truncated" in caplog.text
    # Lightning's word: the newest run's last checkpoint, never a restart from step 0
    assert resolve_ckpt_path("last", log_dir, "train", prefer="best") == str(new / "epoch_003.ckpt")

    (new / "epoch_003.ckpt").write_bytes(b"")
    assert find_checkpoint(log_dir, "train", "best") == old / "last.ckpt"
    (old / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"no readable checkpoint of 'train'.*only unreadable ones"):
        find_checkpoint(log_dir, "train", "last")


@contextlib.contextmanager
def full_disk_context() -> Iterator[None]:
    """Writes beyond 100 kB fail with an OSError, as on a full disk (RLIMIT_FSIZE: no mount needed).

    Only the soft limit is lowered, and restored after; SIGXFSZ is ignored so the write fails
    instead of the process being killed.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_full_disk_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir()
    torch.save({"step": 1}, target)
    before = target.read_bytes()
    with full_disk_context(), pytest.raises(CheckpointError) as info:
        SafeCheckpointIO().save_checkpoint({"step": 2, "w": torch.zeros(100_000)}, target)
    assert f"could not write checkpoint {target}: File too large" in str(info.value)
    assert "the previous last.ckpt is unchanged" in str(info.value)
    assert target.read_bytes() == before and os.listdir(target.parent) == ["last.ckpt"]  # no leftover


def test_a_saved_checkpoint_has_the_usual_permissions(tmp_path: Path) -> None:
    SafeCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    (tmp_path / "plain").write_bytes(b"")
    assert (tmp_path / "last.ckpt").stat().st_mode == (tmp_path / "plain").stat().st_mode
    assert read_checkpoint(tmp_path / "last.ckpt") == {"step": 1}


def test_latest_in_a_multirun_job_is_that_jobs_own(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"

    def job(sweep: str, num: int, overrides: list[str], mtime: float) -> Path:
        folder = log_dir / "train" / "multiruns" / sweep / str(num)
        (folder / "checkpoints").mkdir(parents=True)
        (folder / ".hydra").mkdir()
        OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
        torch.save({"global_step": num}, folder / "checkpoints" / "last.ckpt")
        os.utime(folder / "checkpoints" / "last.ckpt", (mtime, mtime))
        return folder / "checkpoints" / "last.ckpt"

    lr1, lr2 = ["data=synthetic", "model.optimizer.lr=1e-5"], ["data=synthetic", "model.optimizer.lr=2e-5"]
    own = job("first", 0, [*lr1, "ckpt_path=latest"], mtime=1000)
    other = job("first", 1, [*lr2, "ckpt_path=latest"], mtime=2000)  # the task's newest checkpoint
    assert resolve_ckpt_path("latest", log_dir, "train", "last") == str(other)  # a single run: the newest
    assert resolve_ckpt_path("latest", log_dir, "train", "last", job=[*lr1, "ckpt_path=latest"]) == str(own)
    assert resolve_ckpt_path("last", log_dir, "train", "best", job=[*lr1, "ckpt_path=last"]) == str(own)
    # a job without a checkpoint yet starts afresh; latest:<task> still means that task's newest
    assert resolve_ckpt_path("latest", log_dir, "train", "last", job=["model.optimizer.lr=3e-5"]) is None
    assert resolve_ckpt_path("latest:train", log_dir, "eval", "last", job=lr1) == str(other)
    # the same job in a later sweep (the sweep run again) is the newer of the job's own
    again = job("second", 0, [*lr1, "ckpt_path=latest"], mtime=3000)
    assert resolve_ckpt_path("latest", log_dir, "train", "last", job=lr1) == str(again)
