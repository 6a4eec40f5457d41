"""The offline anonymizer: real faces found and obfuscated, faceless images reported, failures counted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from p3m.privacy import FaceObfuscator, transition_band
from p3m.privacy.anonymizer import REPORT_NAME, anonymize_folder
from p3m.privacy.detectors import DetectorUnavailableError, FaceDetection
from p3m.privacy.detectors.centerface import default_model_path
from p3m.tasks.anonymize import anonymize
from p3m.utils.errors import UserError
from tests.cli import run_python

ROOT = Path(__file__).resolve().parents[2]
FACES = ("p_07141906", "p_818e689d")  # visible, unblurred faces
NO_FACES = ("p_bc5cfad1", "p_bd6af989")  # face turned away or hidden


@pytest.fixture
def centerface() -> None:
    """Skip unless the optional detector packages are installed (`make anonymize-deps`)."""
    pytest.importorskip("onnxruntime")
    try:
        default_model_path()
    except DetectorUnavailableError as err:
        pytest.skip(str(err))


def _cfg(**overrides: object) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("anonymize", overrides=[f"{k}={v}" for k, v in overrides.items()] + ["progress=false"])


def _read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return image


class _BoxDetector:
    """A stand-in detector that finds one face at a fixed box in images brighter than 10 on average."""

    name = "box"

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        return [FaceDetection(box=(4.0, 4.0, 20.0, 24.0), score=0.99)] if image.mean() > 10 else []


@pytest.mark.slow
def test_sample_faces_are_found_and_obfuscated(samples_copy: Path, tmp_path: Path, centerface: None) -> None:
    split = samples_copy / "validation" / "P3M-500-NP"
    out = tmp_path / "anonymized"
    report = anonymize(_cfg(input=split / "original_image", output=out, alpha_dir=split / "mask"))

    assert sorted(report.no_face) == list(NO_FACES)
    assert report.failures == {}
    assert sorted(report.written) == sorted(FACES + NO_FACES)
    for stem in FACES:
        assert len(report.scores[stem]) == 1 and report.scores[stem][0] >= 0.8
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["no_face"] == report.no_face and saved["settings"]["method"] == "blur"

    for stem in FACES + NO_FACES:
        original = _read(split / "original_image" / f"{stem}.jpg")
        written = _read(out / "blurred_image" / f"{stem}.png")
        facemask = _read(out / "facemask" / f"{stem}.png", cv2.IMREAD_GRAYSCALE) > 0
        alpha = _read(split / "mask" / f"{stem}.png", cv2.IMREAD_GRAYSCALE)
        assert (out / "mask" / f"{stem}.png").read_bytes() == (split / "mask" / f"{stem}.png").read_bytes()
        changed = (written != original).any(axis=2)
        assert not changed[~facemask].any()  # bit-identical outside the face mask
        if stem in NO_FACES:
            assert not facemask.any()
            continue
        assert 5_000 < facemask.sum() < 100_000
        assert not facemask[alpha == 0].any()  # the mask stays on the person
        region = facemask & ~transition_band(alpha, 25)
        assert changed[region].mean() > 0.95  # the face is obfuscated ...
        assert not changed[facemask & ~region].any()  # ... except for the transition band


def test_zero_without_alpha_blackens_the_whole_face_mask(
    samples_copy: Path, tmp_path: Path, centerface: None
) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    source = samples_copy / "validation" / "P3M-500-NP" / "original_image" / f"{FACES[0]}.jpg"
    source.rename(folder / source.name)
    out = tmp_path / "out"
    report = anonymize(_cfg(input=folder, output=out, method="zero"))
    assert report.no_face == [] and not (out / "mask").exists()
    written = _read(out / "blurred_image" / f"{FACES[0]}.png")
    original = _read(folder / source.name)
    facemask = _read(out / "facemask" / f"{FACES[0]}.png", cv2.IMREAD_GRAYSCALE) > 0
    assert facemask.any() and (written[facemask] == 0).all()
    np.testing.assert_array_equal(written[~facemask], original[~facemask])


def test_folder_failures_are_reported_and_the_rest_is_written(tmp_path: Path) -> None:
    images, alphas, out = tmp_path / "images", tmp_path / "alphas", tmp_path / "out"
    images.mkdir()
    alphas.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b", "c"):
        cv2.imwrite(str(images / f"{stem}.png"), rng.integers(50, 256, (32, 32, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "dark.png"), np.zeros((32, 32, 3), np.uint8))  # no face found
    (images / "broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(images / "a.jpg"), np.full((32, 32, 3), 99, np.uint8))  # same stem as a.png
    (images / "notes.txt").write_text("ignored")
    for stem in ("a", "dark"):
        cv2.imwrite(str(alphas / f"{stem}.png"), np.full((32, 32), 255, np.uint8))
    cv2.imwrite(str(alphas / "b.png"), np.full((40, 40), 255, np.uint8))  # wrong size; c has none

    report = anonymize_folder(
        images, out, _BoxDetector(), FaceObfuscator(method="zero"), alpha_dir=alphas, progress=False
    )
    assert report.written == ["a", "dark"]
    assert report.no_face == ["dark"]
    assert set(report.failures) == {"a.png", "b.png", "broken.jpg", "c.png"}
    assert "same name as a.jpg" in report.failures["a.png"]  # sorted: a.jpg is processed first
    assert "broken.jpg: OpenCV cannot decode it" in report.failures["broken.jpg"]
    assert "is (40, 40), the image is (32, 32)" in report.failures["b.png"]
    assert "no alpha matte named c.*" in report.failures["c.png"]
    assert sorted(p.name for p in (out / "mask").iterdir()) == ["a.png", "dark.png"]
    assert (_read(out / "blurred_image" / "dark.png") == 0).all()


def test_keep_no_face_false_and_jpg_output(tmp_path: Path) -> None:
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    cv2.imwrite(str(images / "face.png"), np.full((32, 32, 3), 200, np.uint8))
    cv2.imwrite(str(images / "dark.png"), np.zeros((32, 32, 3), np.uint8))
    report = anonymize_folder(
        images, out, _BoxDetector(), FaceObfuscator(), image_format="jpg", keep_no_face=False, progress=False
    )
    assert report.written == ["face"] and report.no_face == ["dark"]
    assert sorted(p.name for p in (out / "blurred_image").iterdir()) == ["face.jpg"]
    with pytest.raises(FileNotFoundError, match="set input=DIR"):
        anonymize_folder(tmp_path / "missing", out, _BoxDetector(), FaceObfuscator())
    with pytest.raises(FileNotFoundError, match="alpha_dir=null"):
        anonymize_folder(images, out, _BoxDetector(), FaceObfuscator(), alpha_dir=tmp_path / "missing")


def test_missing_input_key_says_how_to_call_it() -> None:
    with pytest.raises(UserError, match=r"set input=DIR: p3m anonymize"):
        anonymize(_cfg(output="/tmp/x"))


@pytest.mark.slow  # the command in a subprocess
def test_command_line_exit_code_counts_failures(tmp_path: Path, centerface: None) -> None:
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "plain.png"), np.full((64, 96, 3), 127, np.uint8))
    (images / "broken.png").write_bytes(b"\x89PNG garbage")
    out, logs = tmp_path / "out", tmp_path / "logs"
    result = run_python(
        [sys.executable, "src/anonymize.py", f"input={images}", f"output={out}", f"hydra.run.dir={logs}"],
        cwd=ROOT,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["no_face"] == ["plain"] and list(report["failures"]) == ["broken.png"]
    assert "FAILED broken.png" in result.stdout + result.stderr
    assert (logs / "anonymize.log").is_file()  # Hydra's logs went where they were told, not into the repo


def _split(root: Path, stems: tuple[str, ...] = ("a", "b")) -> Path:
    """A P3M-500-NP-style split: original_image/<stem>.jpg and mask/<stem>.png."""
    rng = np.random.default_rng(1)
    for folder in ("original_image", "mask"):
        (root / folder).mkdir(parents=True)
    for stem in stems:
        cv2.imwrite(
            str(root / "original_image" / f"{stem}.jpg"), rng.integers(50, 256, (48, 40, 3), np.uint8)
        )
        cv2.imwrite(str(root / "mask" / f"{stem}.png"), np.full((48, 40), 255, np.uint8))
    return root


def test_output_into_the_split_folder_keeps_its_mattes_and_fails_nothing(tmp_path: Path) -> None:
    """``output=<split> alpha_dir=<split>/mask``: the mattes are in place, not copied onto themselves."""
    split = _split(tmp_path / "P3M-500-NP")
    mattes = {p.name: p.read_bytes() for p in (split / "mask").iterdir()}
    report = anonymize_folder(
        split / "original_image",
        split,
        _BoxDetector(),
        FaceObfuscator(),
        alpha_dir=split / "mask",
        progress=False,
    )
    assert report.failures == {} and report.written == ["a", "b"]
    assert {p.name: p.read_bytes() for p in (split / "mask").iterdir()} == mattes
    assert sorted(p.name for p in (split / "blurred_image").iterdir()) == ["a.png", "b.png"]


def test_outputs_over_inputs_or_existing_files_are_refused_up_front(tmp_path: Path) -> None:
    split = _split(tmp_path / "split")
    images = split / "original_image"
    before = {p: p.read_bytes() for p in split.rglob("*") if p.is_file()}
    # <output>/blurred_image/<stem>.jpg would be the input images themselves
    images_as_output = split / "blurred_image"
    images_as_output.symlink_to(images)
    for overwrite in (False, True):
        with pytest.raises(UserError, match=r"would replace 2 of the input files .*a\.jpg"):
            anonymize_folder(
                images_as_output,
                split,
                _BoxDetector(),
                FaceObfuscator(),
                image_format="jpg",
                overwrite=overwrite,
            )
    images_as_output.unlink()
    assert {p: p.read_bytes() for p in split.rglob("*") if p.is_file()} == before

    out = tmp_path / "out"
    anonymize_folder(images, out, _BoxDetector(), FaceObfuscator(), progress=False)
    with pytest.raises(UserError, match=r"5 output file\(s\) already exist .*set overwrite=true"):
        anonymize_folder(images, out, _BoxDetector(), FaceObfuscator(), progress=False)
    report = anonymize_folder(images, out, _BoxDetector(), FaceObfuscator(), progress=False, overwrite=True)
    assert report.written == ["a", "b"]


def test_truncated_images_are_failures_not_grey_outputs(tmp_path: Path) -> None:
    """cv2.imread pads a cut JPEG with grey; the project's reader refuses it."""
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    smooth = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8), (0, 0), 3)
    cv2.imwrite(str(images / "whole.jpg"), smooth)
    data = (images / "whole.jpg").read_bytes()
    (images / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(images / "cut.jpg")) is not None  # what the anonymizer used to accept
    report = anonymize_folder(images, out, _BoxDetector(), FaceObfuscator(), progress=False)
    assert report.written == ["whole"]
    assert "truncated JPEG" in report.failures["cut.jpg"]
    assert sorted(p.name for p in (out / "blurred_image").iterdir()) == ["whole.png"]
