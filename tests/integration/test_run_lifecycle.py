"""Entry points: exit codes, one message per user error, config checks, Lightning's logs in the run's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig

from p3m.models.components.p3mnet import P3MNet
from p3m.tasks.anonymize import ANONYMIZE_CHECK
from p3m.tasks.eval import EVAL_CHECK, run_evaluation
from p3m.tasks.predict import PREDICT_CHECK, run_prediction
from p3m.tasks.train import TRAIN_CHECK, train
from p3m.utils.errors import EXIT_INTERRUPTED, EXIT_PARTIAL_FAILURE, EXIT_USER_ERROR, UserError
from p3m.utils.run import exit_for_failures, task_wrapper
from tests.cli import run_python
from tests.conftest import REPO_ROOT, tiny_data_overrides


class _RunsCode:
    """Unpickling this would run a shell command: what a malicious checkpoint does."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def _exit_code(task: Callable[[DictConfig], object], cfg: DictConfig, **kwargs: object) -> int | str | None:
    with pytest.raises(SystemExit) as info:
        task_wrapper(task, **kwargs)(cfg)
    return info.value.code


def test_a_user_error_exits_2_with_its_message_once(caplog: pytest.LogCaptureFixture) -> None:
    def task(cfg: DictConfig) -> None:
        raise UserError("data.root is not set: pass data.root=/path")

    assert _exit_code(task, DictConfig({})) == EXIT_USER_ERROR
    assert [r.getMessage() for r in caplog.records] == ["data.root is not set: pass data.root=/path"]
    assert not any(r.exc_info for r in caplog.records)  # no traceback


def test_a_bug_keeps_its_exception_and_traceback() -> None:
    with pytest.raises(ZeroDivisionError):
        task_wrapper(lambda cfg: 1 / 0)(DictConfig({}))


def test_failed_inputs_exit_1_whatever_their_count(caplog: pytest.LogCaptureFixture) -> None:
    exit_for_failures(0, "images")  # nothing failed: no exit
    with pytest.raises(SystemExit) as info:
        exit_for_failures(3, "images")
    assert info.value.code == EXIT_PARTIAL_FAILURE  # not the count: 2 failures would read as a user error
    assert "Images that failed: 3 (listed above); the others are done" in caplog.text


def test_a_user_error_of_a_dataloader_worker_is_one_message(caplog: pytest.LogCaptureFixture) -> None:
    """torch re-raises a worker's exception as text (its formatted traceback): the message is recovered."""
    from torch._utils import ExceptionWrapper

    from p3m.data.io import ImageReadError

    def task(cfg: DictConfig) -> None:
        try:
            raise ImageReadError("train/blurred_image/a.jpg", "truncated JPEG (no end-of-image marker)")
        except ImageReadError:
            ExceptionWrapper(where="in DataLoader worker process 3").reraise()  # a RuntimeError

    assert _exit_code(task, DictConfig({})) == EXIT_USER_ERROR
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["cannot read train/blurred_image/a.jpg: truncated JPEG (no end-of-image marker)"]

    def bug(cfg: DictConfig) -> None:
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            ExceptionWrapper(where="in DataLoader worker process 0").reraise()

    with pytest.raises(ZeroDivisionError, match="Caught ZeroDivisionError in DataLoader worker"):
        task_wrapper(bug)(DictConfig({}))  # a bug keeps its traceback


def test_ctrl_c_exits_130_also_after_lightnings_own_exit() -> None:
    def interrupted(cfg: DictConfig) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the signal arrives first

    def lightning_style(cfg: DictConfig) -> None:
        try:
            interrupted(cfg)
        except KeyboardInterrupt:
            sys.exit(1)  # what Lightning's fit does after a graceful shutdown

    assert _exit_code(interrupted, DictConfig({})) == EXIT_INTERRUPTED
    assert _exit_code(lightning_style, DictConfig({})) == EXIT_INTERRUPTED
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        ("train", "trainer.max_epochs=abc", "trainer.max_epochs=abc: expected an integer or null"),
        ("train", "data.batch_size=true", "data.batch_size=True: expected an integer"),
        ("predict", "max_short_side=abc", "max_short_side=abc: expected an integer"),
        ("predict", "video_background=green", r"video_background=green: expected a list \(\[a,b\]\)"),
        (
            "predict",
            "test_strategy=hybird",
            r"expected one of resize \| hybrid \| full \(did you mean hybrid\?\)",
        ),
        ("predict", "precision=8", r"precision=8: expected one of 32 \| bf16 \| 16"),
        ("predict", "max_short_side=0", r"max_short_side=0: must be at least 32"),
        ("train", "data.batch_size=-1", r"data.batch_size=-1: must be at least 1"),
    ],
)
def test_values_of_the_wrong_type_are_refused_up_front(
    config: str, override: str, message: str, compose_config: Callable[..., DictConfig]
) -> None:
    cfg = compose_config(config, [override])
    with pytest.raises(UserError, match=message):
        {"train": TRAIN_CHECK, "predict": PREDICT_CHECK}[config](cfg)


def test_a_misspelt_added_key_is_refused_before_any_work(
    compose_config: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    overrides = ["+max_short_sde=512", "input=x.jpg", f"output={tmp_path / 'out'}"]
    assert _exit_code(run_prediction, compose_config("predict", overrides), check=PREDICT_CHECK) == 2
    assert (
        "+max_short_sde: predict has no setting max_short_sde (did you mean max_short_side?)" in caplog.text
    )
    assert not (tmp_path / "out").exists()
    # what stays open: config groups, and the detector's free-form arguments
    PREDICT_CHECK(compose_config("predict", ["+logger=csv"]))
    ANONYMIZE_CHECK(compose_config("anonymize", ["+detector_kwargs.input_long_side=960"]))


def test_eval_and_predict_setting_errors_are_user_errors(
    compose_config: Callable[..., DictConfig], caplog: pytest.LogCaptureFixture
) -> None:
    cfg = compose_config("eval", ["data=synthetic", "pred_dir=/nonexistent/predictions"])
    assert _exit_code(run_evaluation, cfg, check=EVAL_CHECK) == EXIT_USER_ERROR
    cfg = compose_config("predict", ["input=x.jpg", "output=out"])  # no ckpt_path
    assert _exit_code(run_prediction, cfg, check=PREDICT_CHECK) == EXIT_USER_ERROR
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[0].startswith("pred_dir=/nonexistent/predictions is not a folder")
    assert errors[1].startswith("set ckpt_path: ") and len(errors) == 2


def test_init_from_weights_of_another_backbone_says_which(
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with torch.device("meta"):  # keys and shapes are all the check reads: no memory, no init
        swin = P3MNet("swin").state_dict()
    path = tmp_path / "swin.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in swin.items()}}, path)
    cfg = compose_config("train", [*tiny_data_overrides(tiny_synthetic), f"model.init_from={path}"])
    assert _exit_code(train, cfg) == EXIT_USER_ERROR
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"model.init_from={path} holds a swin P3M-Net, not resnet34: set backbone=swin, "
        "or model.init_from= a resnet34 checkpoint"
    ]


def test_resuming_from_a_file_that_holds_code_is_refused_before_any_work(
    compose_config: Callable[..., DictConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "callbacks": _RunsCode()}, path)
    assert (
        _exit_code(train, compose_config("train", [f"ckpt_path={path}", "data=synthetic"])) == EXIT_USER_ERROR
    )
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert (
        error.startswith(f"checkpoint {path} holds pickled Python objects") and "refused for safety" in error
    )
    assert "weights_only=False" not in caplog.text


def _cli(script: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "WANDB_MODE": "offline"}
    env.pop("P3M10K_ROOT", None)
    command = [sys.executable, str(REPO_ROOT / "src" / script), *args, f"paths.log_dir={tmp_path / 'logs'}"]
    return run_python(command, cwd=tmp_path, env=env, timeout=300)


def test_cli_user_error_prints_once_and_lightning_logs_reach_the_log_file(tmp_path: Path) -> None:
    result = _cli("train.py", ["data=p3m10k", "data.root=null", "logger=csv", "trainer=cpu"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == EXIT_USER_ERROR, output[-3000:]
    assert output.count("data.root is not set") == 1 and "Traceback" not in output, output
    (log_file,) = (tmp_path / "logs" / "train" / "runs").glob("*/train.log")
    text = log_file.read_text()
    assert "data.root is not set" in text
    assert "GPU available:" in text  # Lightning's own message, which did not propagate to the file
