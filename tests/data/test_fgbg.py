"""fg/bg estimation and its batch runner / entry point (src/prepare.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.fgbg import estimate_fg_bg, fg_dir_for, prepare_fg_bg
from p3m.data.io import read_image, read_mask, read_rgb_array
from p3m.data.layout import P3M10kLayout
from p3m.data.synthetic import ensure_synthetic_dataset
from p3m.data.synthetic_portrait import render_portrait
from p3m.data.transforms import PaperTransform
from p3m.utils.errors import UserError
from tests.cli import run_python

REPO_ROOT = Path(__file__).resolve().parents[2]


def _composite_error(image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    a = alpha[..., None] / 255.0
    return np.abs(a * fg + (1 - a) * bg - image).mean(axis=2)


def _mean_abs(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b)[where].mean())


@pytest.fixture(scope="module")
def tiny_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 64x48 training images with masks only (P3M-10k ships no fg/bg)."""
    syn = ensure_synthetic_dataset(
        tmp_path_factory.mktemp("syn") / "s", num_train=2, num_test=0, size=(64, 48)
    )
    root = tmp_path_factory.mktemp("tiny") / "P3M-10k"
    for name in ("blurred_image", "original_image", "mask"):
        shutil.copytree(syn / "train" / name, root / "train" / name)
    return root


@pytest.fixture
def tiny(tiny_layout: Path, tmp_path: Path) -> Path:
    """A fresh writable copy of the tiny layout."""
    return Path(shutil.copytree(tiny_layout, tmp_path / "P3M-10k"))


def test_estimate_reproduces_the_image_and_recovers_the_layers() -> None:
    p = render_portrait(np.random.default_rng(0), 64, 48)
    fg, bg = estimate_fg_bg(p.original, p.alpha)
    assert fg.shape == bg.shape == p.original.shape and fg.dtype == bg.dtype == np.uint8
    unknown = (p.alpha > 0) & (p.alpha < 255)
    err = _composite_error(p.original, p.alpha, fg, bg)[unknown]
    assert err.mean() < 3.0 and np.percentile(err, 95) < 12.0
    # fg = bg = image would also reproduce the image: check the layers against the true ones.
    semi = (p.alpha >= 64) & (p.alpha <= 230)
    assert _mean_abs(fg, p.fg, semi) < 0.5 * _mean_abs(p.original, p.fg, semi)
    semi = (p.alpha >= 25) & (p.alpha <= 190)
    assert _mean_abs(bg, p.bg, semi) < 0.5 * _mean_abs(p.original, p.bg, semi)
    assert _mean_abs(fg, p.fg, p.alpha == 255) < 2.0


def test_estimate_rejects_bad_inputs() -> None:
    image, alpha = np.zeros((8, 6, 3), np.uint8), np.zeros((8, 6), np.uint8)
    with pytest.raises(ValueError, match="uint8 RGB"):
        estimate_fg_bg(image.astype(np.float32), alpha)
    with pytest.raises(ValueError, match="differ in size"):
        estimate_fg_bg(image, alpha[:4])
    with pytest.raises(ValueError, match="alpha must be"):
        estimate_fg_bg(image, alpha.astype(np.float32))
    fg, _ = estimate_fg_bg(image, alpha[..., None])  # (H, W, 1) is accepted
    assert fg.shape == (8, 6, 3)


def test_fg_dir_follows_the_image_dir() -> None:
    assert fg_dir_for("blurred_image") == "fg_blurred"
    assert fg_dir_for("original_image") == "fg"


def test_prepare_writes_lossless_pngs_and_resumes(tiny: Path) -> None:
    summary = prepare_fg_bg(tiny, workers=1, progress=False)
    stems = sorted(p.stem for p in (tiny / "train" / "mask").iterdir())
    assert summary.written == stems and summary.ok
    for stem in stems:
        image = read_image(tiny / "train" / "blurred_image" / f"{stem}.jpg")
        alpha = read_mask(tiny / "train" / "mask" / f"{stem}.png")
        fg = read_image(tiny / "train" / "fg_blurred" / f"{stem}.png")
        bg = read_image(tiny / "train" / "bg" / f"{stem}.png")
        # What is on disk is exactly what the estimator returns (lossless).
        ref_fg, ref_bg = estimate_fg_bg(image, alpha)
        np.testing.assert_array_equal(fg, ref_fg)
        np.testing.assert_array_equal(bg, ref_bg)
    assert not list((tiny / "train").rglob(".*.tmp")), "no temporary files left"

    fg_file = tiny / "train" / "fg_blurred" / f"{stems[0]}.png"
    stamp = fg_file.stat().st_mtime_ns
    again = prepare_fg_bg(tiny, workers=1, progress=False)
    assert again.skipped == stems and not again.written
    assert fg_file.stat().st_mtime_ns == stamp

    # A truncated output (e.g. copied by hand from an interrupted run) is redone, the rest skipped.
    fg_file.write_bytes(fg_file.read_bytes()[:100])
    third = prepare_fg_bg(tiny, workers=1, progress=False)
    assert third.written == [stems[0]] and third.skipped == stems[1:]
    assert read_image(fg_file).shape[:2] == (64, 48)


def test_prepare_npy_writes_loadable_arrays_and_resumes(tiny: Path) -> None:
    summary = prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    stems = sorted(p.stem for p in (tiny / "train" / "mask").iterdir())
    assert summary.written == stems and summary.ok and not summary.converted
    for folder in ("fg_blurred", "bg"):
        assert sorted(p.name for p in (tiny / "train" / folder).iterdir()) == [f"{s}.npy" for s in stems]
    image = read_image(tiny / "train" / "blurred_image" / f"{stems[0]}.jpg")
    ref_fg, ref_bg = estimate_fg_bg(image, read_mask(tiny / "train" / "mask" / f"{stems[0]}.png"))
    fg = np.load(tiny / "train" / "fg_blurred" / f"{stems[0]}.npy")
    assert fg.dtype == np.uint8 and fg.shape == image.shape
    np.testing.assert_array_equal(fg, ref_fg)
    np.testing.assert_array_equal(read_rgb_array(tiny / "train" / "bg" / f"{stems[0]}.npy"), ref_bg)

    again = prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    assert again.skipped == stems and not again.written
    bg_file = tiny / "train" / "bg" / f"{stems[1]}.npy"
    bg_file.write_bytes(bg_file.read_bytes()[:500])  # truncated: redone, the rest skipped
    third = prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    assert third.written == [stems[1]] and third.skipped == [stems[0]]
    assert read_rgb_array(bg_file).shape == image.shape
    assert not list((tiny / "train").rglob(".*.tmp")), "no temporary files left"


def test_a_corrected_mask_re_estimates_its_fg_bg_and_training_waits_for_it(tiny: Path) -> None:
    prepare_fg_bg(tiny, workers=1, progress=False)
    stems = sorted(p.stem for p in (tiny / "train" / "mask").iterdir())
    mask = tiny / "train" / "mask" / f"{stems[0]}.png"
    assert cv2.imwrite(str(mask), np.ascontiguousarray(read_mask(mask)[:, ::-1]))
    stat = mask.stat()  # dated later, as a correction is: file times can be coarser than this test is fast
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    fg = tiny / "train" / "fg_blurred" / f"{stems[0]}.png"
    with pytest.raises(UserError, match=rf"{fg} was made from {mask}, which changed since.*p3m prepare"):
        P3M10kLayout(tiny).train_split(require_fg_bg=True)
    again = prepare_fg_bg(tiny, workers=1, progress=False)
    assert again.written == [stems[0]] and again.skipped == stems[1:]
    assert len(P3M10kLayout(tiny).train_split(require_fg_bg=True).files) == len(stems)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1].copy())


def _fake_fg_bg(root: Path, fg_dir: str = "fg_blurred") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """fg PNG and bg JPEG per stem, as a dataset might ship them (not estimated: no pymatting needed)."""
    layers = {}
    for image_path in sorted((root / "train" / "blurred_image").iterdir()):
        image = read_image(image_path)
        _write_rgb(root / "train" / fg_dir / f"{image_path.stem}.png", 255 - image)
        _write_rgb(root / "train" / "bg" / f"{image_path.stem}.jpg", image // 2)
        layers[image_path.stem] = (
            read_image(root / "train" / fg_dir / f"{image_path.stem}.png"),
            read_image(root / "train" / "bg" / f"{image_path.stem}.jpg"),
        )
    return layers


def _no_estimation(*args: object, **kwargs: object) -> None:
    raise AssertionError("converting existing fg/bg must not estimate")


def test_npy_converts_existing_fg_bg_without_estimating(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layers = _fake_fg_bg(tiny)
    monkeypatch.setattr("p3m.data.fgbg.estimate_fg_bg", _no_estimation)
    # Into another root first: the dataset's own files are the sources and stay untouched.
    out = tmp_path / "fast"
    summary = prepare_fg_bg(tiny, output_root=out, workers=1, progress=False, fg_bg_format="npy")
    assert summary.converted == sorted(layers) and summary.ok and not summary.written
    for stem, (fg, bg) in layers.items():
        np.testing.assert_array_equal(np.load(out / "train" / "fg_blurred" / f"{stem}.npy"), fg)
        np.testing.assert_array_equal(np.load(out / "train" / "bg" / f"{stem}.npy"), bg)
    assert not list((tiny / "train").rglob("*.npy"))
    # In place: the arrays land next to the image files, which are kept (delete them to save disk).
    summary = prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    assert summary.converted == sorted(layers)
    stem, (fg, _) = next(iter(layers.items()))
    np.testing.assert_array_equal(np.load(tiny / "train" / "fg_blurred" / f"{stem}.npy"), fg)
    assert (tiny / "train" / "fg_blurred" / f"{stem}.png").is_file()
    assert prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy").skipped == sorted(layers)


def test_conversion_checks_the_source_size_and_estimates_what_is_missing(tiny: Path) -> None:
    layers = _fake_fg_bg(tiny)
    first, second = sorted(layers)
    _write_rgb(tiny / "train" / "fg_blurred" / f"{first}.png", np.zeros((40, 40, 3), np.uint8))
    (tiny / "train" / "bg" / f"{second}.jpg").unlink()
    summary = prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    assert list(summary.failed) == [first] and summary.written == [second]
    assert f"fg_blurred/{first}.png is (40, 40)" in summary.failed[first]
    assert "overwrite=true" in summary.failed[first]
    # The fg came from its PNG, the missing bg from the estimator.
    np.testing.assert_array_equal(np.load(tiny / "train" / "fg_blurred" / f"{second}.npy"), layers[second][0])
    image = read_image(tiny / "train" / "blurred_image" / f"{second}.jpg")
    _, ref_bg = estimate_fg_bg(image, read_mask(tiny / "train" / "mask" / f"{second}.png"))
    np.testing.assert_array_equal(np.load(tiny / "train" / "bg" / f"{second}.npy"), ref_bg)


def test_png_format_counts_any_existing_file_and_overwrite_replaces_it(tiny: Path) -> None:
    stems = sorted(p.stem for p in (tiny / "train" / "mask").iterdir())
    prepare_fg_bg(tiny, workers=1, progress=False, fg_bg_format="npy")
    assert prepare_fg_bg(tiny, workers=1, progress=False).skipped == stems  # the arrays are fg/bg too
    summary = prepare_fg_bg(tiny, workers=1, progress=False, overwrite=True)
    assert summary.written == stems
    # The arrays would be read instead of the new PNGs: overwrite removed them.
    assert not list((tiny / "train").rglob("*.npy"))
    assert len(list((tiny / "train" / "bg").glob("*.png"))) == len(stems)


def test_png_overwrite_never_deletes_a_shipped_image_file(tiny: Path) -> None:
    stem = sorted(p.stem for p in (tiny / "train" / "mask").iterdir())[0]
    shipped = tiny / "train" / "bg" / f"{stem}.jpg"
    shipped.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny / "train" / "blurred_image" / f"{stem}.jpg", shipped)
    summary = prepare_fg_bg(tiny, workers=1, progress=False, overwrite=True)
    assert shipped.is_file() and not (tiny / "train" / "bg" / f"{stem}.png").exists()
    assert "move that file away" in summary.failed[stem] and str(shipped) in summary.failed[stem]


def test_unknown_format_is_refused(tiny: Path) -> None:
    with pytest.raises(ValueError, match=r"fg_bg_format='bmp' is unknown; choose one of png, npy"):
        prepare_fg_bg(tiny, progress=False, fg_bg_format="bmp")


def test_prepare_originals_into_another_root(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = prepare_fg_bg(tiny, output_root=out, image_dir="original_image", workers=1, progress=False)
    assert summary.ok and len(summary.written) == 2
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        ".bg.p3m-sources.json",
        ".fg.p3m-sources.json",
        "bg",
        "fg",
    ]
    assert not (tiny / "train" / "fg").exists(), "the dataset itself is untouched"


def test_prepare_reports_bad_images_and_continues(tiny: Path) -> None:
    images = sorted((tiny / "train" / "blurred_image").iterdir())
    images[0].write_bytes(b"not a jpeg")
    orphan = tiny / "train" / "blurred_image" / "no_mask.jpg"
    shutil.copy(images[1], orphan)
    summary = prepare_fg_bg(tiny, workers=1, progress=False)
    assert summary.written == [images[1].stem]
    assert set(summary.failed) == {images[0].stem, "no_mask"}
    assert str(images[0]) in summary.failed[images[0].stem]
    assert "no mask" in summary.failed["no_mask"]
    assert not (tiny / "train" / "fg_blurred" / f"{images[0].stem}.png").exists()


def test_prepare_names_the_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"data\.root=") as info:
        prepare_fg_bg(tmp_path, progress=False)
    assert "train/blurred_image" in str(info.value)


def test_prepare_entry_point_config(tiny: Path) -> None:
    """conf/prepare.yaml composes; src/prepare.run refuses bad settings and counts failures (in-process)."""
    from hydra import compose, initialize_config_dir

    from p3m.tasks.prepare import run

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("prepare", overrides=["data.root=null", "workers=1", "progress=false"])
        assert cfg.image_dir == "blurred_image" and cfg.output_root is None and not cfg.overwrite
        with pytest.raises(UserError, match=r"data\.root="):
            run(cfg)
        cfg = compose("prepare", overrides=[f"data.root={tiny}", "workers=1", "progress=false"])
    assert run(cfg) == 0
    assert len(list((tiny / "train" / "fg_blurred").glob("*.png"))) == 2
    assert cfg.fg_bg_format == "png"
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        base = [f"data.root={tiny}", "workers=1", "progress=false"]
        with pytest.raises(UserError, match="fg_bg_format='webp'"):
            run(compose("prepare", overrides=[*base, "fg_bg_format=webp"]))
        assert run(compose("prepare", overrides=[*base, "fg_bg_format=npy"])) == 0
    assert len(list((tiny / "train" / "bg").glob("*.npy"))) == 2  # converted from the PNGs


def _prepare_cli(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `python src/prepare.py` as a user would (no PYTHONPATH), logging under `cwd`."""
    env = {k: v for k, v in os.environ.items() if k not in ("P3M10K_ROOT", "PROJECT_ROOT", "PYTHONPATH")}
    script = REPO_ROOT / "src" / "prepare.py"
    command = [sys.executable, str(script), f"paths.log_dir={cwd / 'logs'}", *overrides]
    return run_python(command, cwd=cwd, env=env, timeout=120)


@pytest.mark.slow
def test_cli_on_the_real_samples(samples_copy: Path, tmp_path: Path) -> None:
    """`src/prepare.py data.root=...` on 4 real 1080p portraits (copied), then on the tiny set in parallel."""
    done = _prepare_cli(f"data.root={samples_copy}", "workers=1", "progress=false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    train = samples_copy / "train"
    stems = sorted(p.stem for p in (train / "mask").iterdir())
    assert sorted(p.stem for p in (train / "fg_blurred").iterdir()) == stems
    image = read_image(train / "blurred_image" / f"{stems[0]}.jpg")
    alpha = read_mask(train / "mask" / f"{stems[0]}.png")
    fg, bg = (
        read_image(train / "fg_blurred" / f"{stems[0]}.png"),
        read_image(train / "bg" / f"{stems[0]}.png"),
    )
    unknown = (alpha > 0) & (alpha < 255)
    assert _composite_error(image, alpha, fg, bg)[unknown].mean() < 3.0
    assert len(list((tmp_path / "logs" / "prepare" / "runs").glob("*/prepare.log"))) == 1


@pytest.mark.slow
def test_cli_parallel_exit_codes(tiny: Path, tmp_path: Path) -> None:
    # Started from anywhere, the entry point finds the repository (conf/paths needs PROJECT_ROOT).
    resolved = _prepare_cli("--cfg", "job", "--resolve", cwd=tmp_path)
    assert resolved.returncode == 0 and f"root_dir: {REPO_ROOT}" in resolved.stdout, resolved.stderr

    missing = _prepare_cli(cwd=tmp_path)
    assert missing.returncode == 2 and "data.root=" in missing.stdout + missing.stderr

    (tiny / "train" / "blurred_image" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    shutil.copy(tiny / "train" / "mask" / "syn_train_0000.png", tiny / "train" / "mask" / "broken.png")
    run = _prepare_cli(f"data.root={tiny}", "workers=2", cwd=tmp_path)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "broken" in run.stdout + run.stderr
    assert len(list((tiny / "train" / "fg_blurred").glob("*.png"))) == 2


@pytest.mark.slow  # a training run
def test_a_webp_image_goes_through_prepare_and_training(tiny_synthetic: Path, tmp_path: Path) -> None:
    """Every folder listing shares one set of image suffixes: prepare writes the fg/bg of a .webp image
    (it used to list .jpg/.jpeg/.png only) and the training set then pairs and loads it."""
    root = tmp_path / "root"
    shutil.copytree(tiny_synthetic, root)
    train = root / "train"
    first = sorted((train / "blurred_image").iterdir())[0]
    webp = first.with_suffix(".webp")
    assert cv2.imwrite(str(webp), cv2.imread(str(first)), [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless
    first.unlink()
    for folder in ("fg_blurred", "bg"):
        for stale in (train / folder).glob(f"{first.stem}.*"):
            stale.unlink()
    summary = prepare_fg_bg(root, workers=1, progress=False)
    assert summary.written == [first.stem] and not summary.failed
    dm = P3M10kDataModule(
        root=root,
        augmentation=PaperTransform(crop_sizes=[48, 64], out_size=64),
        batch_size=2,
        num_workers=0,
        require_fg_bg=True,
    )
    dm.setup("fit")
    index = [f.stem for f in dm.train_set.files].index(first.stem)
    assert dm.train_set.files[index].image.suffix == ".webp"
    item = dm.train_set[index]
    assert item["image"].shape == (3, 64, 64) and item["fg"].shape == (3, 64, 64)
