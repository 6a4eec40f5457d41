"""Training pipelines: bit-parity with the official steps for fixed choices, the random draws, the
variants (ijcv, none, strong) and configuration errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as tvt

from p3m.data.transforms import (
    CropChoices,
    IJCVTransform,
    PaperTransform,
    ResizeTransform,
    StrongTransform,
    resize_maps,
)
from p3m.data.transforms.crop import flip_commutes_with_resize
from tests.data import portrait
from tests.data.test_trimap import official_trimap


def official_sample(
    image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, choices: CropChoices, out_size: int
) -> dict[str, torch.Tensor]:
    """The official MattingDataset.__getitem__ + MattingTransform for fixed choices, written out."""
    trimap = official_trimap(alpha, choices.kernel_size)  # full-size trimap
    c, y, x = choices.crop_size, choices.top, choices.left
    maps = []
    for item in (image, alpha, fg, bg, trimap):
        item = item[y : y + c, x : x + c]
        if choices.flip:
            item = cv2.flip(item, 1)
        maps.append(cv2.resize(item, (out_size, out_size), interpolation=cv2.INTER_LINEAR))
    tensors = [
        torch.from_numpy(m.astype(np.float32)[np.newaxis])
        if m.ndim < 3
        else torch.from_numpy(m.astype(np.float32)).permute(2, 0, 1)
        for m in maps
    ]
    normalize = tvt.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    return {
        "image": normalize(tensors[0] / 255.0),
        "alpha": tensors[1] / 255.0,  # the official code keeps 0..255; the contract is [0, 1]
        "fg": normalize(tensors[2] / 255.0),
        "bg": normalize(tensors[3] / 255.0),
        "trimap": tensors[4],
    }


def assert_same(ours: dict[str, torch.Tensor], official: dict[str, torch.Tensor]) -> None:
    for key, expected in official.items():
        assert ours[key].shape == expected.shape, key
        # Same operations in the same order: equal to the last bit, not just to interpolation tolerance.
        assert torch.equal(ours[key], expected), (key, float((ours[key] - expected).abs().max()))


@pytest.fixture(scope="module")
def tiny() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    image, alpha = portrait(rng, 150, 136)
    return {
        "image": image,
        "alpha": alpha,
        "fg": image[::-1].copy(),
        "bg": cv2.GaussianBlur(image, (0, 0), 3),
    }


def test_real_sample_equals_official_steps(samples_dir: Path) -> None:
    """PIL decode at full size, full-size trimap, crop, flip, cv2 resize, normalise (ACM MM 2021)."""
    stem = "p_51c916fc"
    image = np.array(Image.open(samples_dir / "train" / "blurred_image" / f"{stem}.jpg"))
    alpha = np.array(Image.open(samples_dir / "train" / "mask" / f"{stem}.png"))
    fg, bg = image[:, ::-1].copy(), cv2.GaussianBlur(image, (0, 0), 5)
    from p3m.data.io import read_image, read_mask  # our decode (OpenCV) gives PIL's pixels

    ours_image, ours_alpha = (
        read_image(samples_dir / "train" / "blurred_image" / f"{stem}.jpg"),
        read_mask(samples_dir / "train" / "mask" / f"{stem}.png"),
    )
    np.testing.assert_array_equal(ours_image, image)
    np.testing.assert_array_equal(ours_alpha, alpha)
    height, width = alpha.shape
    pipeline = PaperTransform()
    sample = pipeline.prepare({"image": ours_image, "alpha": ours_alpha, "fg": fg, "bg": bg})
    for choices in (
        CropChoices(crop_size=1024, top=20, left=400, flip=True, kernel_size=30),
        CropChoices(crop_size=768, top=0, left=0, flip=False, kernel_size=15),
        CropChoices(crop_size=512, top=height - 513, left=width - 513, flip=True, kernel_size=22),
    ):
        assert_same(pipeline.apply(sample, choices), official_sample(image, alpha, fg, bg, choices, 512))


def test_random_choices_equal_official_steps(tiny: dict[str, np.ndarray]) -> None:
    # crop 64 -> 32 is an exact 2x downscale (OpenCV's special path), 48 -> 32 and 32 -> 32 the others.
    pipeline = PaperTransform(crop_sizes=(32, 48, 64), out_size=32, kernel_range=(3, 9))
    rng = np.random.default_rng(0)
    seen_sizes = set()
    for _ in range(30):
        choices = pipeline.draw(tiny["alpha"], rng)
        seen_sizes.add(choices.crop_size)
        ours = pipeline.apply(tiny, choices)
        assert_same(ours, official_sample(tiny["image"], tiny["alpha"], tiny["fg"], tiny["bg"], choices, 32))
    assert seen_sizes == {32, 48, 64}


@pytest.mark.parametrize(("crop", "out"), [(1024, 512), (768, 512), (512, 512), (96, 64), (50, 64)])
def test_resize_maps_equals_one_resize_per_map(crop: int, out: int) -> None:
    rng = np.random.default_rng(crop)
    maps = {
        "image": rng.integers(0, 256, (crop, crop, 3), dtype=np.uint8),
        "alpha": rng.integers(0, 256, (crop, crop), dtype=np.uint8),
        "fg": rng.integers(0, 256, (crop, crop, 3), dtype=np.uint8),
        "trimap": rng.integers(0, 256, (crop, crop), dtype=np.uint8),
        "facemask": rng.integers(0, 256, (crop, crop), dtype=np.uint8),
    }
    resized = resize_maps(maps, out)
    for key, value in maps.items():
        np.testing.assert_array_equal(
            resized[key], cv2.resize(value, (out, out), interpolation=cv2.INTER_LINEAR)
        )


@pytest.mark.parametrize("out", [32, 64, 96, 512])
def test_flipping_after_the_resize_is_exact_where_the_pipeline_does_it(out: int) -> None:
    rng = np.random.default_rng(out)
    sizes = [s for s in range(out // 2, 3 * out, max(1, out // 32)) if flip_commutes_with_resize(s, out)]
    sizes += [512, 600, 768, 1000, 1024] if out == 512 else []
    assert len(sizes) > 10
    for size in sizes:
        for shape in ((size, size), (size, size, 3)):
            crop = rng.integers(0, 256, shape, dtype=np.uint8)
            before = cv2.resize(cv2.flip(crop, 1), (out, out), interpolation=cv2.INTER_LINEAR)
            after = cv2.flip(cv2.resize(crop, (out, out), interpolation=cv2.INTER_LINEAR), 1)
            np.testing.assert_array_equal(before, after, err_msg=f"{size} -> {out}, {shape}")


def test_draw_follows_the_official_rules(tiny: dict[str, np.ndarray]) -> None:
    height, width = tiny["alpha"].shape  # 150 x 136
    pipeline = PaperTransform(
        crop_sizes=(64, 136, 140), out_size=64, kernel_range=(5, 6), transition_prob=1.0
    )
    rng = np.random.default_rng(1)
    sizes, flips, kernels = set(), set(), set()
    for _ in range(200):
        choices = pipeline.draw(tiny["alpha"], rng)
        sizes.add(choices.crop_size)
        flips.add(choices.flip)
        kernels.add(choices.kernel_size)
        c = choices.crop_size
        assert 0 <= choices.top < height - c and 0 <= choices.left < width - c  # trimap[:H - c, :W - c]
        assert official_trimap(tiny["alpha"], choices.kernel_size)[choices.top, choices.left] == 128
    assert sizes == {64}  # 136 and 140 are not < min(H, W) = 136: the smallest replaces them
    assert flips == {False, True} and kernels == {5, 6}  # kernel range is inclusive
    never_flip = PaperTransform(crop_sizes=(64,), out_size=64, flip_prob=0.0, transition_prob=0.0)
    assert not any(never_flip.draw(tiny["alpha"], rng).flip for _ in range(50))


def test_no_transition_pixels_falls_back_to_any_pixel() -> None:
    pipeline = PaperTransform(crop_sizes=(32,), out_size=32, transition_prob=1.0)
    rng = np.random.default_rng(0)
    choices = [pipeline.draw(np.zeros((60, 50), np.uint8), rng) for _ in range(400)]
    assert {c.top for c in choices} == set(range(28)) and {c.left for c in choices} == set(range(18))


def test_ijcv_centres_the_crop_and_requantises(tiny: dict[str, np.ndarray]) -> None:
    pipeline = IJCVTransform(crop_sizes=(64, 96), out_size=32, kernel_range=(5, 9))
    paper = PaperTransform(crop_sizes=(64, 96), out_size=32, kernel_range=(5, 9))
    rng = np.random.default_rng(2)
    height, width = tiny["alpha"].shape
    tops = set()
    for _ in range(100):
        choices = pipeline.draw(tiny["alpha"], rng)
        c = choices.crop_size
        assert 0 <= choices.top <= height - c and 0 <= choices.left <= width - c  # clamped inside
        tops.add(choices.top)
    assert height - 96 in tops  # a centre near the bottom clamps the crop to the border
    choices = CropChoices(crop_size=80, top=20, left=10, flip=True, kernel_size=9)  # 2.5x: interpolates
    ijcv_item, paper_item = pipeline.apply(tiny, choices), paper.apply(tiny, choices)
    assert set(torch.unique(ijcv_item["trimap"]).tolist()) <= {0.0, 128.0, 255.0}
    assert len(torch.unique(paper_item["trimap"])) > 3  # the paper keeps the bilinear values
    raw = paper_item["trimap"]
    expected = torch.where(raw > 180, 255.0, torch.where(raw < 50, 0.0, 128.0))
    assert torch.equal(ijcv_item["trimap"], expected)
    assert torch.equal(ijcv_item["image"], paper_item["image"]) and torch.equal(
        ijcv_item["alpha"], paper_item["alpha"]
    )


def test_none_is_a_deterministic_whole_image_resize(tiny: dict[str, np.ndarray]) -> None:
    pipeline = ResizeTransform(out_size=64)
    first = pipeline(tiny, np.random.default_rng(0))
    second = pipeline(tiny, np.random.default_rng(1))
    for key in first:
        assert torch.equal(first[key], second[key]), key
    expected = cv2.resize(tiny["alpha"], (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    np.testing.assert_array_equal(first["alpha"][0].numpy(), expected)
    trimap = cv2.resize(official_trimap(tiny["alpha"], 25), (64, 64), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(first["trimap"][0].numpy(), trimap.astype(np.float32))


def test_strong_keeps_maps_consistent(tiny: dict[str, np.ndarray]) -> None:
    same = {"image": tiny["image"], "alpha": tiny["alpha"], "fg": tiny["image"], "bg": tiny["image"]}
    pipeline = StrongTransform(
        crop_sizes=(96,), out_size=64, affine_prob=1.0, colour_prob=1.0, rotate_limit=20
    )
    paper = PaperTransform(crop_sizes=(96,), out_size=64)
    choices = CropChoices(crop_size=96, top=10, left=20, flip=False, kernel_size=7)
    plain = paper.apply(same, choices)
    changed = 0
    for seed in range(6):
        item = pipeline.apply(same, choices, augment_seed=seed)
        assert set(item) == set(plain) and all(item[k].shape == plain[k].shape for k in item)
        # One per-pixel colour function for image, fg and bg: identical inputs stay identical.
        assert torch.equal(item["image"], item["fg"]) and torch.equal(item["image"], item["bg"])
        # Alpha is warped but never recoloured; the nearest-warped trimap keeps the paper's values.
        assert float(item["alpha"].min()) >= 0.0 and float(item["alpha"].max()) <= 1.0
        assert set(torch.unique(item["trimap"]).tolist()) <= set(torch.unique(plain["trimap"]).tolist())
        changed += not torch.equal(item["image"], plain["image"])
        # Aligned maps: where the warped trimap says foreground, the warped alpha is (near) opaque.
        fg_region = item["trimap"] == 255
        assert float(item["alpha"][fg_region].min()) > 0.9
    assert changed == 6
    again = pipeline.apply(same, choices, augment_seed=3)
    assert torch.equal(again["image"], pipeline.apply(same, choices, augment_seed=3)["image"])  # seeded


def test_strong_without_augmentation_is_the_paper_pipeline(tiny: dict[str, np.ndarray]) -> None:
    pipeline = StrongTransform(crop_sizes=(96,), out_size=64, affine_prob=0.0, colour_prob=0.0)
    choices = CropChoices(crop_size=96, top=10, left=20, flip=True, kernel_size=7)
    assert_same(
        pipeline.apply(tiny, choices, augment_seed=1),
        PaperTransform(crop_sizes=(96,), out_size=64).apply(tiny, choices),
    )


def test_small_images_are_enlarged_instead_of_failing(tiny: dict[str, np.ndarray]) -> None:
    small = {k: np.ascontiguousarray(v[:40, :90]) for k, v in tiny.items()}  # short side 40 <= crop 64
    pipeline = PaperTransform(crop_sizes=(64, 96), out_size=32)
    prepared = pipeline.prepare(small)
    assert prepared["alpha"].shape == (65, 147)  # short side = smallest crop + 1, long side rounded up
    item = pipeline(small, np.random.default_rng(0))
    assert item["image"].shape == (3, 32, 32) and item["trimap"].shape == (1, 32, 32)


def test_batch_item_contract(tiny: dict[str, np.ndarray]) -> None:
    with_mask = dict(tiny, facemask=(tiny["alpha"] > 200).astype(np.uint8) * 255)
    for pipeline in (
        PaperTransform(crop_sizes=(64,), out_size=32),
        IJCVTransform(crop_sizes=(64,), out_size=32),
    ):
        item = pipeline(with_mask, np.random.default_rng(0))
        assert set(item) == {"image", "alpha", "fg", "bg", "trimap", "facemask"}
        for key in ("image", "fg", "bg"):
            assert item[key].shape == (3, 32, 32) and item[key].dtype == torch.float32
            assert float(item[key].min()) > -2.2 and float(item[key].max()) < 2.7  # ImageNet-normalised
        for key in ("alpha", "facemask"):
            assert (
                item[key].shape == (1, 32, 32) and 0 <= float(item[key].min()) <= float(item[key].max()) <= 1
            )
        assert float(item["trimap"].min()) >= 0 and float(item["trimap"].max()) <= 255
    minimal = PaperTransform(crop_sizes=(64,), out_size=32)(
        {"image": tiny["image"], "alpha": tiny["alpha"]}, np.random.default_rng(0)
    )
    assert set(minimal) == {"image", "alpha", "trimap"}


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"crop_sizes": []}, "crop_sizes"),
        ({"crop_sizes": [0, 512]}, "crop_sizes"),
        ({"crop_sizes": ["big"]}, "crop_sizes"),
        ({"out_size": 500}, "out_size"),
        ({"out_size": 0}, "out_size"),
        ({"kernel_range": [30, 15]}, "kernel_range"),
        ({"kernel_range": [15]}, "kernel_range"),
        ({"transition_prob": 1.5}, "transition_prob"),
        ({"flip_prob": -0.1}, "flip_prob"),
    ],
)
def test_bad_configuration_names_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=rf"augmentation.{key}"):
        PaperTransform(**kwargs)


def test_bad_strong_configuration_names_the_key() -> None:
    with pytest.raises(ValueError, match=r"augmentation.scale_range"):
        StrongTransform(scale_range=[1.2, 0.8])
    with pytest.raises(ValueError, match=r"augmentation.rotate_limit"):
        StrongTransform(rotate_limit=-5)
    with pytest.raises(ValueError, match=r"augmentation.out_size"):
        ResizeTransform(out_size=100)


def test_with_geometry_returns_a_rescaled_copy() -> None:
    paper = PaperTransform()
    small = paper.with_geometry(crop_sizes=[96, 128], out_size=64)
    assert (small.crop_sizes, small.out_size, small.fallback_crop) == ((96, 128), 64, 96)
    assert paper.crop_sizes == (512, 768, 1024)  # unchanged
    assert isinstance(StrongTransform().with_geometry(out_size=64), StrongTransform)
    assert ResizeTransform().with_geometry(crop_sizes=[1], out_size=64).out_size == 64
