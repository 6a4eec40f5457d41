"""p3m.utils.files: whole files or none, and the overwrite policy shared by the entry points."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import p3m.utils.files
from p3m.utils.errors import UserError
from p3m.utils.files import atomic_path, check_outputs, write_bytes_atomic


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "matte.png"
    target.write_bytes(b"old")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"

    real_create = p3m.utils.files._create

    def full_disk(path: Path):
        f = real_create(path)
        f.write(b"half")
        f.close()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(p3m.utils.files, "_create", full_disk)
    with pytest.raises(OSError, match=r"could not write .*matte\.png: No space left on device") as info:
        write_bytes_atomic(target, b"newer")
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["matte.png"]

    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "model.ckpt") as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["matte.png"]


def test_outputs_over_inputs_are_refused_even_through_links(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"the user's photo")
    os.link(photo, tmp_path / "hard_link.png")
    (tmp_path / "sym_link.png").symlink_to(photo)
    for output in (
        photo,
        tmp_path / "hard_link.png",
        tmp_path / "sym_link.png",
        tmp_path / "." / "photo.png",
    ):
        with pytest.raises(UserError, match="output would replace 1 of the input files"):
            check_outputs([output], [photo], overwrite=True)
    new = [tmp_path / f"new_{i}.png" for i in range(5)]
    check_outputs(new, [photo], overwrite=False)
    for path in new:
        path.write_bytes(b"")
    with pytest.raises(
        UserError, match=r"5 output file\(s\) already exist \(.*new_0\.png, .*, \.\.\.\); set overwrite"
    ):
        check_outputs(new, [photo], overwrite=False)
    check_outputs(new, [photo], overwrite=True)


def test_a_full_disk_is_named_with_the_output_not_a_temporary_file() -> None:
    from p3m.utils.files import write_errors_named

    with (
        pytest.raises(
            UserError, match=r"^could not write out/p3mnet.onnx: the disk is full \(no space left\)"
        ),
        write_errors_named("out/p3mnet.onnx"),
    ):
        raise OSError(errno.ENOSPC, "No space left on device", "out/.p3mnet.onnx.1234.abcd.tmp")
