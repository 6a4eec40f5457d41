"""The datamodule and datasets: batches, evaluation loaders, seeding, configs and bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from p3m.data.datamodule import P3M10kDataModule
from p3m.data.fgbg import prepare_fg_bg
from p3m.data.io import ImageReadError, ImageSizeError
from p3m.data.layout import DatasetLayoutError
from p3m.data.transforms import IJCVTransform, PaperTransform, ResizeTransform, StrongTransform
from p3m.privacy.modes import PPT, NoPrivacy
from tests.data import EVAL_SPLITS, assert_same_samples, make_p3m_tree, write

CONF = Path(__file__).resolve().parents[2] / "conf"
SMALL = {"crop_sizes": [32, 48], "out_size": 32, "kernel_range": [3, 7]}


def datamodule(root: Path, **kwargs) -> P3M10kDataModule:
    args = {
        "root": root,
        "augmentation": PaperTransform(**SMALL),
        "eval_splits": EVAL_SPLITS,
        "batch_size": 2,
        "num_workers": 0,
        "require_fg_bg": True,
    }
    args.update(kwargs)
    return P3M10kDataModule(**args)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    return make_p3m_tree(tmp_path / "p3m", facemask=True)


def test_training_batch_contract(tiny_root: Path) -> None:
    dm = datamodule(tiny_root)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert len(loader) == 2 and loader.drop_last
    batch = next(iter(loader))
    assert set(batch) == {"image", "alpha", "trimap", "fg", "bg", "facemask", "index"}
    assert batch["index"].dtype == torch.int64 and set(batch["index"].tolist()) <= set(range(4))
    for key in ("image", "fg", "bg"):
        assert batch[key].shape == (2, 3, 32, 32) and batch[key].dtype == torch.float32
    for key in ("alpha", "trimap", "facemask"):
        assert batch[key].shape == (2, 1, 32, 32) and batch[key].dtype == torch.float32
    assert batch["alpha"].min() >= 0 and batch["alpha"].max() <= 1 and batch["trimap"].max() <= 255
    assert set(dm.read_dirs) == {
        tiny_root / f"train/{d}" for d in ("blurred_image", "mask", "fg_blurred", "bg", "facemask")
    }


def test_without_fg_bg_the_batch_omits_them(tiny_root: Path) -> None:
    dm = datamodule(tiny_root, require_fg_bg=False, load_facemask=False)
    dm.setup("fit")
    assert set(next(iter(dm.train_dataloader()))) == {"image", "alpha", "trimap", "index"}
    assert set(dm.read_dirs) == {tiny_root / "train/blurred_image", tiny_root / "train/mask"}


def test_evaluation_loaders_follow_the_split_table(tiny_root: Path) -> None:
    dm = datamodule(tiny_root)
    assert [s.name for s in dm.eval_splits] == ["P3M-500-P", "P3M-500-NP"]
    assert [s.prefix for s in dm.eval_splits] == ["p", "np"]
    assert dm.eval_splits[1].image_dir == "P3M-500-NP/original_image"
    dm.setup("validate")
    loaders = dm.val_dataloader()
    assert len(loaders) == 2 and all(loader.batch_size == 1 for loader in loaders)
    assert len(dm.test_dataloader()) == 2
    batches = [list(loader) for loader in loaders]
    first = batches[1][1]
    assert first["image"].dtype == torch.uint8 and first["image"].shape == (1, 3, 80, 64)  # full resolution
    assert first["alpha"].dtype == torch.float64 and first["alpha"].shape == (1, 1, 80, 64)
    assert first["trimap"].dtype == torch.uint8 and set(first["trimap"].unique().tolist()) <= {0, 128, 255}
    assert first["stem"] == ["np_0001"] and first["split"] == ["P3M-500-NP"]
    assert first["orig_size"].tolist() == [[80, 64]]
    assert [b["split"][0] for b in batches[0]] == ["P3M-500-P"] * 2
    assert "facemask" not in first


def test_same_seed_same_batches_other_seed_other_batches(tiny_root: Path) -> None:
    def first_batch(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        dm = datamodule(tiny_root)
        dm.setup("fit")
        return next(iter(dm.train_dataloader()))

    a, b, c = first_batch(0), first_batch(0), first_batch(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image"], c["image"])


def test_workers_draw_different_reproducible_augmentations(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path / "p3m", num_train=1)
    for i in range(1, 4):  # four copies of one sample: any difference comes from the augmentation
        for folder, suffix in (
            ("blurred_image", "jpg"),
            ("mask", "png"),
            ("fg_blurred", "png"),
            ("bg", "jpg"),
        ):
            (root / f"train/{folder}/p_{i:04d}.{suffix}").write_bytes(
                (root / f"train/{folder}/p_0000.{suffix}").read_bytes()
            )

    def epoch() -> list[torch.Tensor]:
        dm = datamodule(root, batch_size=1, num_workers=2, seed=123)
        dm.setup("fit")
        dm.train_set.reseed(0)  # a stream inherited from the main process must not leak into workers
        return [batch["image"] for batch in dm.train_dataloader()]

    first, second = epoch(), epoch()
    assert all(torch.equal(x, y) for x, y in zip(first, second, strict=True))  # reproducible
    assert not torch.equal(first[0], first[1])  # batches 0 and 1 come from different workers


def test_limits_and_batch_size_errors(tiny_root: Path) -> None:
    dm = datamodule(tiny_root, limit_train_samples=2, limit_eval_samples=1)
    dm.setup("fit")
    assert len(dm.train_set) == 2 and [len(s) for s in dm.eval_sets] == [1, 1]
    with pytest.raises(ValueError, match=r"4 training samples .* data.batch_size=8 .*lower data.batch_size"):
        datamodule(tiny_root, batch_size=8).setup("fit")
    with pytest.raises(TypeError, match=r"data.augmentation must be an instantiated training pipeline"):
        datamodule(tiny_root, augmentation={"_target_": "p3m.data.transforms.PaperTransform"})
    with pytest.raises(ValueError, match=r"data.batch_size"):
        datamodule(tiny_root, batch_size=0)


def test_train_size_overrides_the_augmentation(tiny_root: Path) -> None:
    dm = datamodule(tiny_root, augmentation=PaperTransform(), train_size=64, crop_sizes=[48, 56])
    assert (dm.augmentation.out_size, dm.augmentation.crop_sizes) == (64, (48, 56))
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 64, 64)


def test_missing_root_and_unknown_privacy(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match=r"data.root is not set.*data=synthetic"):
        datamodule(None).setup("fit")
    with pytest.raises(DatasetLayoutError, match=r"P3M-10k not found at"):
        datamodule(tmp_path / "absent").setup("fit")
    with pytest.raises(TypeError, match=r"data.privacy must be an instantiated privacy mode .*_target_"):
        datamodule(tmp_path, privacy={"mode": "blurry"})


def test_bad_files_fail_with_their_names(tiny_root: Path) -> None:
    (tiny_root / "train/blurred_image/p_0001.jpg").write_bytes(b"\xff\xd8garbage")
    write(tiny_root / "train/mask/p_0002.png", np.zeros((70, 64), np.uint8))
    dm = datamodule(tiny_root)
    dm.setup("fit")
    by_stem = {f.stem: i for i, f in enumerate(dm.train_set.files)}
    with pytest.raises(ImageReadError, match=r"p_0001\.jpg"):
        dm.train_set[by_stem["p_0001"]]
    with pytest.raises(
        ImageSizeError, match=r"mask/p_0002\.png is 70x64 but .*blurred_image/p_0002\.jpg is 72x64"
    ):
        dm.train_set[by_stem["p_0002"]]


@pytest.mark.parametrize(
    "augmentation",
    [PaperTransform(**SMALL), IJCVTransform(**SMALL), ResizeTransform(out_size=32), StrongTransform(**SMALL)],
    ids=["paper", "ijcv", "none", "strong"],
)
def test_npy_fg_bg_give_the_same_samples_as_image_files(
    tiny_root: Path, tmp_path: Path, augmentation: PaperTransform | ResizeTransform
) -> None:
    fast = Path(shutil.copytree(tiny_root, tmp_path / "fast"))
    summary = prepare_fg_bg(fast, workers=1, progress=False, fg_bg_format="npy")
    assert len(summary.converted) == 4  # re-encoded from the PNG / JPEG files, not estimated
    for folder in ("fg_blurred", "bg"):  # only the arrays remain: they must be what is read
        for path in (fast / "train" / folder).iterdir():
            if path.suffix != ".npy":
                path.unlink()
    images = datamodule(tiny_root, augmentation=augmentation)
    arrays = datamodule(fast, augmentation=augmentation)
    images.setup("fit")
    arrays.setup("fit")
    loaded = arrays.train_set.load(0)
    assert isinstance(loaded["fg"], np.memmap) and isinstance(loaded["bg"], np.memmap)
    assert_same_samples(images.train_set, arrays.train_set)


def test_bad_npy_fg_bg_fail_with_their_names(tiny_root: Path) -> None:
    for stem in ("p_0000", "p_0001", "p_0002", "p_0003"):
        (tiny_root / f"train/fg_blurred/{stem}.png").unlink()
    np.save(tiny_root / "train/fg_blurred/p_0000.npy", np.zeros((72, 64, 3), np.float32))
    np.save(tiny_root / "train/fg_blurred/p_0001.npy", np.zeros((72, 64), np.uint8))
    np.save(tiny_root / "train/fg_blurred/p_0002.npy", np.zeros((72, 64, 3), np.uint8))
    data = (tiny_root / "train/fg_blurred/p_0002.npy").read_bytes()
    (tiny_root / "train/fg_blurred/p_0002.npy").write_bytes(data[: len(data) // 2])
    np.save(tiny_root / "train/fg_blurred/p_0003.npy", np.zeros((70, 64, 3), np.uint8))
    dm = datamodule(tiny_root)
    dm.setup("fit")
    by_stem = {f.stem: i for i, f in enumerate(dm.train_set.files)}
    for stem, error, message in (
        ("p_0000", ImageReadError, r"fg_blurred/p_0000\.npy: holds a float32 array"),
        ("p_0001", ImageReadError, r"fg_blurred/p_0001\.npy: holds a uint8 array of shape \(72, 64\)"),
        ("p_0002", ImageReadError, r"fg_blurred/p_0002\.npy: truncated \.npy"),
        ("p_0003", ImageSizeError, r"fg_blurred/p_0003\.npy is 70x64 but .*/p_0003\.jpg is 72x64"),
    ):
        with pytest.raises(error, match=message):
            dm.train_set[by_stem[stem]]


def test_grey_rgba_and_16_bit_files_are_read(tmp_path: Path) -> None:
    root = make_p3m_tree(tmp_path / "p3m", num_train=2, fg_dir=None, bg=False)
    image = cv2.imread(str(root / "train/blurred_image/p_0000.jpg"))
    alpha = cv2.imread(str(root / "train/mask/p_0000.png"), cv2.IMREAD_UNCHANGED)
    (root / "train/blurred_image/p_0000.jpg").unlink()
    cv2.imwrite(str(root / "train/blurred_image/p_0000.png"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    (root / "train/blurred_image/p_0001.jpg").unlink()
    cv2.imwrite(str(root / "train/blurred_image/p_0001.png"), cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(root / "train/mask/p_0001.png"), alpha.astype(np.uint16) * 257)
    dm = datamodule(root, require_fg_bg=False)
    dm.setup("fit")
    loaded = [dm.train_set.load(i) for i in range(2)]
    assert all(s["image"].shape == (72, 64, 3) for s in loaded)
    np.testing.assert_array_equal(loaded[1]["alpha"], alpha)  # 16-bit -> the same 8-bit matte
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 32, 32)


def test_synthetic_block_generates_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import p3m.data.datamodule as datamodule_module

    calls = []

    def fake(root: str, **kwargs) -> Path:
        calls.append(kwargs)
        if not Path(root).exists():
            make_p3m_tree(Path(root), original=True)
        return Path(root)

    monkeypatch.setattr(datamodule_module, "ensure_synthetic_dataset", fake)
    dm = datamodule(
        tmp_path / "syn",
        synthetic={"num_train": 4, "size": [72, 64], "seed": 0},
        privacy=NoPrivacy(),
        require_fg_bg=False,
    )
    dm.prepare_data()
    dm.setup("fit")
    assert calls[0] == {"num_train": 4, "size": (72, 64), "seed": 0}
    assert dm.read_dirs[0] == tmp_path / "syn/train/original_image"


def test_real_samples_batch(samples_copy: Path) -> None:
    dm = P3M10kDataModule(
        root=samples_copy,
        augmentation=PaperTransform(),
        eval_splits=EVAL_SPLITS,
        batch_size=2,
        num_workers=0,
        require_fg_bg=False,
        limit_eval_samples=1,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "alpha", "trimap", "index"}
    assert batch["image"].shape == (2, 3, 512, 512) and batch["alpha"].shape == (2, 1, 512, 512)
    assert batch["image"].min() > -2.2 and batch["image"].max() < 2.7
    assert batch["alpha"].min() >= 0 and batch["alpha"].max() <= 1 and 0 < batch["alpha"].mean() < 1
    assert {0.0, 128.0, 255.0} <= set(batch["trimap"].unique().tolist())
    samples = [next(iter(loader)) for loader in dm.val_dataloader()]
    assert [s["split"] for s in samples] == [["P3M-500-P"], ["P3M-500-NP"]]
    for sample in samples:
        assert sample["image"].dtype == torch.uint8 and min(sample["orig_size"][0].tolist()) == 1080
        assert set(sample["trimap"].unique().tolist()) <= {0, 128, 255} and "facemask" not in sample


@pytest.mark.parametrize(
    ("augmentation", "kind"),
    [
        ("paper", PaperTransform),
        ("ijcv", IJCVTransform),
        ("none", ResizeTransform),
        ("strong", StrongTransform),
    ],
)
def test_configs_compose_and_instantiate(tiny_root: Path, augmentation: str, kind: type) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"augmentation={augmentation}",
                f"data.root={tiny_root}",
                "data.num_workers=0",
                "data.batch_size=2",
            ],
        )
    dm = instantiate(cfg.data)
    assert type(dm.augmentation) is kind and dm.privacy == PPT() and dm.hparams.privacy == {"mode": "ppt"}
    assert [s.prefix for s in dm.eval_splits] == ["p", "np"]
    dm.augmentation = dm.augmentation.with_geometry(crop_sizes=[32, 48], out_size=32)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 32, 32)


def test_synthetic_config_points_under_data_dir(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=["data=synthetic", f"paths.data_dir={tmp_path}", "privacy=none"]
        )
    assert cfg.data.root == f"{tmp_path}/synthetic" and cfg.privacy._target_ == "p3m.privacy.modes.NoPrivacy"
    assert cfg.data.train_size == 128 and cfg.data.synthetic.size == [256, 192]
    assert cfg.data.eval_splits[0].prefix == "p"  # inherited from p3m10k


@pytest.mark.parametrize(
    "name",
    [
        "augmentation/paper.yaml",
        "augmentation/ijcv.yaml",
        "augmentation/none.yaml",
        "augmentation/strong.yaml",
        "data/p3m10k.yaml",
        "data/synthetic.yaml",
        "privacy/ppt.yaml",
        "privacy/none.yaml",
    ],
)
def test_every_yaml_key_has_a_comment(name: str) -> None:
    text = (CONF / name).read_text()
    keys = [line for line in text.splitlines() if re.match(r"^\s*(- )?[A-Za-z_]+:", line)]
    assert keys, name
    uncommented = [
        line for line in keys if "#" not in line and not line.strip().startswith(("defaults:", "_target_:"))
    ]
    assert not uncommented, uncommented
    if name.startswith("augmentation/"):
        OmegaConf.load(CONF / name)  # parses
