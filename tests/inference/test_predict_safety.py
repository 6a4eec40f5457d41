"""src/predict.py never loses a user's file: refusals before any work, checked atomic writes, exit codes."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

import p3m.utils.files
from p3m.data.io import read_image
from p3m.tasks.predict import run_prediction
from p3m.utils.errors import UserError
from tests.inference.test_predict import _photos


def _config(compose_config: Callable[..., DictConfig], ckpt: Path, spec: Path, out: Path, *extra: str):
    overrides = [f"ckpt_path={ckpt}", f"input={spec}", f"output={out}", "test_strategy=resize", "device=cpu"]
    return compose_config("predict", [*overrides, *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_output_that_would_replace_an_input_is_refused_before_the_model_loads(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path
) -> None:
    """``input=X/rgba output=X`` would write X/rgba/<stem>.png over the inputs themselves."""
    cutouts = tmp_path / "X" / "rgba"
    cutouts.mkdir(parents=True)
    shutil.copy(_photos(tiny_synthetic, tmp_path / "photos") / "second.png", cutouts / "second.png")
    before = _snapshot(tmp_path / "X")
    absent = tmp_path / "absent.ckpt"  # loading it would fail: the refusal must come first
    for extra in ([], ["overwrite=true"]):
        with pytest.raises(UserError, match=r"would replace 1 of the input files .*second\.png"):
            run_prediction(_config(compose_config, absent, cutouts, tmp_path / "X", *extra))
    assert _snapshot(tmp_path / "X") == before


def test_existing_outputs_are_refused_unless_overwrite(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    out = tmp_path / "out"
    (out / "alpha").mkdir(parents=True)
    (out / "alpha" / "second.png").write_bytes(b"the user's earlier matte")
    with pytest.raises(UserError, match=r"1 output file\(s\) already exist .*set overwrite=true"):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", photos, out))
    assert (out / "alpha" / "second.png").read_bytes() == b"the user's earlier matte"
    assert sorted(p.name for p in out.rglob("*")) == ["alpha", "second.png"], "nothing else was written"

    again = _config(compose_config, tiny_checkpoint, photos / "second.png", out, "overwrite=true")
    summary = run_prediction(again)
    assert [p.name for p in summary.written] == ["second.png"]
    assert read_image(out / "alpha" / "second.png").shape[:2] == read_image(photos / "second.png").shape[:2]


@pytest.mark.parametrize("case", ["output is a file", "input has no images"])
def test_unusable_output_or_empty_input_is_refused_before_the_model_loads(
    compose_config: Callable[..., DictConfig], tiny_synthetic: Path, tmp_path: Path, case: str
) -> None:
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    out = tmp_path / "out"
    if case == "output is a file":
        out.write_text("a file, not a folder")
        match = r"out is a file, not a folder"
    else:
        photos = tmp_path / "empty"
        photos.mkdir()
        match = r"empty holds no images"
    with pytest.raises(UserError, match=match):
        run_prediction(_config(compose_config, tmp_path / "absent.ckpt", photos, out))


def test_failed_writes_are_counted_and_leave_no_partial_file(
    compose_config: Callable[..., DictConfig],
    tiny_synthetic: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills up while the cut-outs are written: each one is a failure, none is left half-written."""
    photos = _photos(tiny_synthetic, tmp_path / "photos")
    real_create = p3m.utils.files._create

    class FullDisk:
        def __init__(self, path: Path) -> None:
            self.file = real_create(path)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> None:
            self.file.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def create(path: Path):
        return FullDisk(path) if path.parent.name == "rgba" else real_create(path)

    monkeypatch.setattr(p3m.utils.files, "_create", create)
    out = tmp_path / "out"
    summary = run_prediction(_config(compose_config, tiny_checkpoint, photos, out))
    assert not summary.written
    failed = {p.name: reason for p, reason in summary.failed}
    for name in ("phone.jpg", "portrait.jpg", "second.png"):
        assert f"could not write {out / 'rgba' / Path(name).with_suffix('.png').name}" in failed[name]
        assert "No space left on device" in failed[name]
    assert list((out / "rgba").iterdir()) == [], "no truncated cut-out and no temporary file"
    for matte in (out / "alpha").iterdir():
        read_image(matte)  # whole files
