"""Writing outputs safely: whole files or none, and never over an input or an unrequested existing file.

Every writer of the project goes through :func:`atomic_path` (directly, or through
:func:`write_bytes_atomic` / :func:`write_image`): the data goes to a hidden temporary file in the
target's folder and is renamed over the target only when it was written completely. A full disk or
a crash therefore leaves the old file (or none), never a truncated one that later reads as valid,
and a write error is raised naming the file instead of being ignored (``cv2.imwrite`` only returns
False). The temporary file is in the same folder because a rename is atomic only within one file
system, and hidden with a ``.tmp`` suffix so that no dataset or image listing picks it up.

:func:`check_outputs` is the shared overwrite policy of the entry points that write user files
(predict, convert, anonymize): an output that is one of the inputs is always refused, existing
outputs only with ``overwrite=true``, and both before any work is done; :func:`check_output_dir`
refuses an output folder that cannot be made or written to, before any work too.
"""

from __future__ import annotations

import errno
import io
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from p3m.utils.errors import UserError

_EXAMPLES = 3  # paths quoted in a refusal; the count says how many there are in all


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path to write `path`'s content to; renamed over `path` when the block succeeds.

    On any exception (a write error, Ctrl-C) the temporary file is removed and `path` is untouched.

    Args:
        path: The file to write.
        keep_suffix: End the temporary name with `path`'s suffix after ``.tmp`` (``.a.mp4.<id>.tmp.mp4``),
            for writers that choose the format by the suffix (``cv2.VideoWriter``).

    Example:
        ``with atomic_path(target) as tmp: torch.save(obj, tmp)``
    """
    path = Path(path)
    suffix = ".tmp" + (path.suffix if keep_suffix else "")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create(path: Path) -> BinaryIO:
    # os.open, not mkstemp (0600 files): the umask sets the permissions as for any other output.
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write `data` to `path` through a temporary file and a rename (see :func:`atomic_path`).

    Raises:
        OSError: the write failed (e.g. ENOSPC); the message names `path`, which is left as it was.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp, _create(tmp) as f:
            f.write(data)
    except OSError as err:
        raise OSError(err.errno, f"could not write {path}: {err.strerror or err}") from err


class WriteError(UserError):
    """An output that could not be written (a full disk, no permission); names the output, not a temp file."""


@contextmanager
def write_errors_named(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an ``OSError`` of the block (a library writing our temporary file) into a :class:`WriteError`
    naming ``path``; a full disk is said to be one."""
    try:
        yield
    except OSError as err:
        full = err.errno in (errno.ENOSPC, errno.EDQUOT)
        why = (
            "the disk is full (no space left); free space or write elsewhere" if full else err.strerror or err
        )
        raise WriteError(f"could not write {path}: {why}") from err


def encode_image(path: str | os.PathLike[str], image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    """The bytes of `image` (OpenCV channel order) in the format of `path`'s suffix.

    Raises:
        OSError: OpenCV cannot encode it (unknown suffix, unsupported depth), naming `path`.
    """
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix, image, list(params))
    except cv2.error as err:
        raise OSError(f"could not encode {path} ({err.err})") from None
    if not ok:
        raise OSError(f"could not encode {path} as {path.suffix}")
    return encoded.tobytes()


def write_image(path: str | os.PathLike[str], image: np.ndarray, params: Sequence[int] = ()) -> None:
    """``cv2.imwrite`` that never leaves half a file and raises (naming `path`) instead of returning False."""
    write_bytes_atomic(path, encode_image(path, image, params))


def write_figure(path: str | os.PathLike[str], figure: Any, **savefig_kwargs: Any) -> None:
    """Save a matplotlib figure whole or not at all (`write_bytes_atomic`), in the format of the suffix."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or None, **savefig_kwargs)
    write_bytes_atomic(path, buffer.getbuffer())


def _identities(paths: Iterable[Path]) -> tuple[set[Path], set[tuple[int, int]]]:
    """Resolved paths and (device, inode) pairs (these catch hard links and case-folding file systems)."""
    resolved, inodes = set(), set()
    for path in paths:
        resolved.add(path.resolve())
        try:
            stat = path.stat()
        except OSError:
            continue
        inodes.add((stat.st_dev, stat.st_ino))
    return resolved, inodes


def _examples(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_EXAMPLES])
    return shown + (", ..." if len(paths) > _EXAMPLES else "")


def check_outputs(
    outputs: Sequence[Path], inputs: Iterable[Path], *, overwrite: bool, output_key: str = "output"
) -> None:
    """Refuse, before any work, outputs that would replace an input or (unless `overwrite`) any file.

    Args:
        outputs: every file the run would write.
        inputs: every file the run reads.
        overwrite: the entry point's ``overwrite`` setting: replace existing outputs.
        output_key: the config key that chose the outputs, named in the messages.

    Raises:
        UserError: naming how many files would be replaced, a few of them, and the fix.
    """
    resolved, inodes = _identities(inputs)
    clobbered = []
    for path in outputs:
        if path.resolve() in resolved or _identities([path])[1] & inodes:
            clobbered.append(path)
    if clobbered:
        raise UserError(
            f"{output_key} would replace {len(clobbered)} of the input files ({_examples(clobbered)}); "
            f"choose an {output_key} that is not where the inputs are (overwrite=true does not allow this)"
        )
    existing = [path for path in outputs if path.exists()]
    if existing and not overwrite:
        raise UserError(
            f"{len(existing)} output file(s) already exist ({_examples(existing)}); set overwrite=true to "
            f"replace them, or choose another {output_key}"
        )


def check_output_dir(out_dir: Path, subfolders: Sequence[str] = (), output: Path | None = None) -> None:
    """Refuse an output that cannot become a folder of results: for checks before any work.

    Args:
        out_dir: the folder the run writes into (created with its parents when missing).
        subfolders: folders the run creates inside ``out_dir`` (``alpha``, ``clip/rgba``).
        output: the ``output`` setting named in the messages, when it is a file in ``out_dir``.

    Raises:
        UserError: ``out_dir``, one of its ``subfolders`` or an ancestor is a file, or the nearest
            existing folder cannot be written to.
    """
    # The nearest existing folder on the way to out_dir: everything below it is created by the run.
    nearest = next(p for p in (out_dir, *out_dir.absolute().parents) if p.exists())
    inside = [
        out_dir.joinpath(*Path(sub).parts[: i + 1]) for sub in subfolders for i in range(len(Path(sub).parts))
    ]
    for path in (*inside, nearest):
        if path.exists() and not path.is_dir():
            raise UserError(f"output={output or out_dir}: {path} is a file, not a folder; choose a folder")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise UserError(
            f"output={output or out_dir}: {nearest} is not writable; choose a folder you can write to"
        )
