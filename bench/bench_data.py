"""Time one training sample (augmentation=paper) against a plain reimplementation of the official steps.

The baseline is written here from the official ``MattingDataset.__getitem__`` / ``MattingTransform``
(ACM MM 2021 ``core/data.py``), not copied: PIL decode of image, alpha, fg and bg at full size, the
full-size float32 trimap (ellipse kernel from randint(15, 30)), the crop drawn with
``np.where(trimap_crop == 128)``, flip, five ``cv2.resize`` calls, float conversion and
``transforms.Normalize``. Ours is ``P3M10kTrainDataset.__getitem__`` with ``PaperTransform``, in
two variants that differ only in how fg/bg are stored:

- ``png``: the same files the official code reads (fg PNG, bg JPEG), decoded with OpenCV;
- ``npy``: the arrays ``python src/prepare.py fg_bg_format=npy`` makes of those files (it converts
  them, no estimation), memory-mapped: only the crop's pixels are read, so their cost moves from
  "decode" into the crop/resize stage;
- ``packed``: the packed training format of ``python src/prepare.py pack=true`` (image, alpha, fg and
  bg all uint8 arrays in ``train/packed/``, memory-mapped): nothing is decoded.

Data: the 4 real training portraits of ``tests/fixtures/p3m_samples`` (1080 px short side). They ship no
fg/bg, so a temporary copy gets the files the official layout expects: ``train/fg_blurred/<stem>.png``
= the image (written with the PNG settings of ``src/prepare.py``) and ``train/bg/<stem>.jpg`` = the
image blurred (sigma 8). The official baseline reads these files with PIL in every variant.

All run in this process, pinned to one CPU core (``--cpu``), single-threaded, interleaved sample by
sample so that all see the same machine load; every figure is the median over ``--rounds`` passes
over the 4 images. The files sit in the page cache (as after the first epoch): the figures are CPU
time, not disk reads. Before timing, the bench checks that for the same random choices both of our
variants give the official sample bit for bit.

    python bench/bench_data.py [--rounds 15] [--cpu 0] [--samples tests/fixtures/p3m_samples]

Prints a markdown table and writes bench/results/data.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import PIL
import torch
from PIL import Image
from torch.utils.data import DataLoader, RandomSampler
from torchvision import transforms as tvt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.data.datamodule import seed_worker  # noqa: E402
from p3m.data.datasets import P3M10kTrainDataset  # noqa: E402
from p3m.data.fgbg import prepare_fg_bg  # noqa: E402
from p3m.data.io import read_image, read_mask, read_rgb_array  # noqa: E402
from p3m.data.layout import P3M10kLayout  # noqa: E402
from p3m.data.packed import pack_training_set  # noqa: E402
from p3m.data.transforms import CropChoices, PaperTransform  # noqa: E402

SAMPLES = REPO / "tests" / "fixtures" / "p3m_samples"  # the 8 MIT sample portraits, in the repository
PNG_PARAMS = [
    cv2.IMWRITE_PNG_COMPRESSION,
    3,
    cv2.IMWRITE_PNG_FILTER,
    cv2.IMWRITE_PNG_FILTER_UP,
]  # as prepare.py
CROP_SIZES = [512, 768, 1024]
OUT_SIZE = 512
NORMALIZE = tvt.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


# -- the official steps, written out ------------------------------------------------------------------


def official_trimap(alpha: np.ndarray, kernel_size: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    reachable = cv2.dilate((alpha != 0).astype(np.float32), kernel, iterations=1)
    foreground = cv2.erode((alpha == 255).astype(np.float32), kernel, iterations=1)
    return (foreground * 255 + (reachable - foreground) * 128).astype(np.uint8)


def official_decode(paths: dict[str, Path]) -> list[np.ndarray]:
    alpha = np.array(Image.open(paths["alpha"]))
    if alpha.ndim > 2:
        alpha = alpha[:, :, 0]
    return [
        np.array(Image.open(paths["image"])),
        alpha,
        np.array(Image.open(paths["fg"])),
        np.array(Image.open(paths["bg"])),
    ]


def official_transform(
    image: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray, choices: CropChoices | None = None
) -> list[torch.Tensor]:
    kernel_size = random.randint(15, 30) if choices is None else choices.kernel_size
    trimap = official_trimap(alpha, kernel_size)
    h, w = alpha.shape
    crop = CROP_SIZES[random.randint(0, len(CROP_SIZES) - 1)]
    crop = crop if crop < min(h, w) else 512
    region = trimap[: h - crop, : w - crop]
    target = np.where(region == 128) if random.random() < 0.5 else np.where(region > -100)
    if len(target[0]) == 0:
        target = np.where(region > -100)
    pick = np.random.randint(len(target[0]), size=1)[0]
    x, y = target[1][pick], target[0][pick]
    flip = random.random() < 0.5
    if choices is not None:  # injected choices (parity check); the draws above still cost their time
        crop, y, x, flip = choices.crop_size, choices.top, choices.left, choices.flip
    maps = []
    for item in (image, alpha, fg, bg, trimap):
        item = item[y : y + crop, x : x + crop]
        if flip:
            item = cv2.flip(item, 1)
        maps.append(cv2.resize(item, (OUT_SIZE, OUT_SIZE), interpolation=cv2.INTER_LINEAR))
    tensors = [
        torch.from_numpy(m.astype(np.float32)[np.newaxis])
        if m.ndim < 3
        else torch.from_numpy(m.astype(np.float32)).permute(2, 0, 1)
        for m in maps
    ]
    image_t, alpha_t, fg_t, bg_t, trimap_t = tensors
    return [NORMALIZE(image_t / 255.0), alpha_t, NORMALIZE(fg_t / 255.0), NORMALIZE(bg_t / 255.0), trimap_t]


# -- setup ----------------------------------------------------------------------------------------------


def build_root(samples: Path, root: Path) -> list[dict[str, Path]]:
    train = root / "train"
    for folder in ("blurred_image", "mask", "fg_blurred", "bg"):
        (train / folder).mkdir(parents=True)
    paths = []
    for image_path in sorted((samples / "train" / "blurred_image").glob("*.jpg")):
        stem = image_path.stem
        shutil.copy(image_path, train / "blurred_image" / image_path.name)
        shutil.copy(samples / "train" / "mask" / f"{stem}.png", train / "mask" / f"{stem}.png")
        bgr = cv2.imread(str(image_path))
        cv2.imwrite(str(train / "fg_blurred" / f"{stem}.png"), bgr, PNG_PARAMS)
        cv2.imwrite(str(train / "bg" / f"{stem}.jpg"), cv2.GaussianBlur(bgr, (0, 0), 8))
        paths.append(
            {
                "image": train / "blurred_image" / image_path.name,
                "alpha": train / "mask" / f"{stem}.png",
                "fg": train / "fg_blurred" / f"{stem}.png",
                "bg": train / "bg" / f"{stem}.jpg",
            }
        )
    return paths


def build_npy_root(root: Path, npy_root: Path) -> None:
    """A copy of ``root`` whose fg/bg are the ``.npy`` arrays that ``src/prepare.py`` converts them to."""
    shutil.copytree(root, npy_root)
    summary = prepare_fg_bg(npy_root, workers=1, progress=False, fg_bg_format="npy")
    if summary.failed or summary.written or not summary.converted:
        raise RuntimeError(f"npy conversion did not just convert: {summary}")
    for folder in ("fg_blurred", "bg"):  # leave only the arrays, so that they are surely what is read
        for path in (npy_root / "train" / folder).iterdir():
            if path.suffix != ".npy":
                path.unlink()


def build_packed_root(root: Path, packed_root: Path) -> None:
    """A copy of ``root`` with the packed training format (``src/prepare.py pack=true``) added."""
    shutil.copytree(root, packed_root)
    summary = pack_training_set(packed_root, workers=1, progress=False)
    if summary.failed or not summary.converted:
        raise RuntimeError(f"packing failed: {summary}")


def loader_samples_per_s(dataset: P3M10kTrainDataset, workers: int, samples: int, batch: int = 8) -> float:
    """Samples/s of a ``DataLoader`` with ``workers`` workers over ``dataset`` (drawn with replacement).

    Timed from the first batch on, so the workers' start-up is not counted.
    """
    sampler = RandomSampler(dataset, replacement=True, num_samples=samples + batch)
    loader = DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, worker_init_fn=seed_worker
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    count = sum(len(b["image"]) for b in iterator)
    return count / (time.perf_counter() - start)


def check_parity(dataset: P3M10kTrainDataset, pipeline: PaperTransform, paths: list[dict[str, Path]]) -> bool:
    """Same choices -> bit-identical samples (ours vs official), for every image and crop size."""
    rng = np.random.default_rng(0)
    for index, files in enumerate(paths):
        sample = pipeline.prepare(dataset.load(index))
        decoded = official_decode(files)
        for crop in CROP_SIZES:
            drawn = pipeline.draw(sample["alpha"], rng)
            choices = CropChoices(
                crop_size=pipeline.crop_size_for(crop, *sample["alpha"].shape),
                top=min(drawn.top, sample["alpha"].shape[0] - 1 - crop),
                left=min(drawn.left, sample["alpha"].shape[1] - 1 - crop),
                flip=drawn.flip,
                kernel_size=drawn.kernel_size,
            )
            ours = pipeline.apply(sample, choices)
            official = official_transform(*decoded, choices=choices)
            for key, value in zip(("image", "alpha", "fg", "bg", "trimap"), official, strict=True):
                expected = value / 255.0 if key == "alpha" else value
                if not torch.equal(ours[key], expected):
                    print(f"MISMATCH {files['image'].name} {choices} {key}", file=sys.stderr)
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="passes over the 4 images per pipeline")
    parser.add_argument("--cpu", type=int, default=0, help="CPU core to pin to (-1: no pinning)")
    parser.add_argument("--samples", type=Path, default=SAMPLES, help="p3m_samples folder")
    parser.add_argument(
        "--loader-workers", type=int, default=2, help="DataLoader workers (0: skip that part)"
    )
    parser.add_argument(
        "--loader-samples", type=int, default=160, help="samples timed through the DataLoader"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "data.json")
    args = parser.parse_args()

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    cv2.setNumThreads(0)
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)

    variants = ("png", "npy", "packed")
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        paths = build_root(args.samples, Path(tmp) / "images")
        build_npy_root(Path(tmp) / "images", Path(tmp) / "arrays")
        build_packed_root(Path(tmp) / "images", Path(tmp) / "packed")
        pipeline = PaperTransform(crop_sizes=CROP_SIZES, out_size=OUT_SIZE)
        datasets: dict[str, P3M10kTrainDataset] = {}
        for variant, folder in zip(variants, ("images", "arrays", "packed"), strict=True):
            layout = P3M10kLayout(Path(tmp) / folder)
            datasets[variant] = P3M10kTrainDataset(layout.train_split(require_fg_bg=True), pipeline)
            datasets[variant].reseed(0)
            assert [f.stem for f in datasets[variant].files] == [p["image"].stem for p in paths]
        assert all(f.fg.suffix == f.bg.suffix == ".npy" for f in datasets["npy"].files)
        assert all(
            {p.suffix for p in (f.image, f.alpha, f.fg, f.bg)} == {".npy"} for f in datasets["packed"].files
        )
        identical = {variant: check_parity(datasets[variant], pipeline, paths) for variant in variants}

        times: dict[str, list[float]] = {
            f"{who}{part}": [] for who in ("official", *variants) for part in ("", "_decode")
        }
        for index in range(len(paths)):  # warm-up: file cache, lazy tables
            official_transform(*official_decode(paths[index]))
            for dataset in datasets.values():
                dataset[index]
        for _ in range(args.rounds):
            for index, files in enumerate(paths):
                start = time.perf_counter()
                official_decoded = official_decode(files)
                mid = time.perf_counter()
                official_transform(*official_decoded)
                end = time.perf_counter()
                times["official"].append(end - start)
                times["official_decode"].append(mid - start)

                for variant, dataset in datasets.items():
                    start = time.perf_counter()
                    sample = dataset.load(index)
                    mid = time.perf_counter()
                    dataset.transform(sample, dataset.rng)
                    end = time.perf_counter()
                    times[variant].append(end - start)
                    times[f"{variant}_decode"].append(mid - start)
                    del sample  # unmap the arrays, as a finished sample does

        # Per-file decode cost, to show where the time goes (PIL as the official code, ours via p3m.data.io).
        # For .npy this is only the header and the mapping: the pixels are read later, in the crop.
        npy_files = [{"fg": f.fg, "bg": f.bg} for f in datasets["npy"].files]
        readers = {
            "official": {
                key: (lambda p: np.array(Image.open(p)), paths) for key in ("image", "alpha", "fg", "bg")
            },
            "png": {
                "image": (read_image, paths),
                "alpha": (read_mask, paths),
                "fg": (read_image, paths),
                "bg": (read_image, paths),
            },
            "npy": {"fg": (read_rgb_array, npy_files), "bg": (read_rgb_array, npy_files)},
        }
        per_file: dict[str, dict[str, float]] = {name: {} for name in readers}
        for name, table in readers.items():
            for key, (reader, files_list) in table.items():
                runs = []
                for _ in range(max(3, args.rounds // 3)):
                    for files in files_list:
                        start = time.perf_counter()
                        reader(files[key])
                        runs.append(time.perf_counter() - start)
                per_file[name][key] = round(1e3 * statistics.median(runs), 3)

        loader_rate: dict[str, float] = {}
        if args.loader_workers > 0:
            if hasattr(os, "sched_setaffinity"):  # the workers get every core, not the pinned one
                os.sched_setaffinity(0, range(os.cpu_count() or 1))
            for variant in ("png", "packed"):
                rate = loader_samples_per_s(datasets[variant], args.loader_workers, args.loader_samples)
                loader_rate[variant] = round(rate, 1)

    ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    for who in ("official", *variants):
        ms[f"{who}_rest"] = 1e3 * statistics.median(
            t - d for t, d in zip(times[who], times[f"{who}_decode"], strict=True)
        )
    ratios = {variant: round(ms[variant] / ms["official"], 3) for variant in variants}
    result = {
        "per_sample_ms": {k: round(v, 2) for k, v in ms.items()},
        "ratio_over_official": ratios,
        "ratio_after_decode": {v: round(ms[f"{v}_rest"] / ms["official_rest"], 3) for v in variants},
        "ratio_decode": {v: round(ms[f"{v}_decode"] / ms["official_decode"], 3) for v in variants},
        "decode_ms_per_file": per_file,
        "bit_identical_for_same_choices": identical,
        "dataloader_samples_per_s": loader_rate,
        "dataloader_workers": args.loader_workers,
        "samples": len(times["official"]),
        "images": [p["image"].name for p in paths],
        "command": " ".join(["python", "bench/bench_data.py", *sys.argv[1:]]),
        "setup": {
            "cpu_pinned": args.cpu,
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "pillow": PIL.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "fg": "png variant and official: PNG (compression 3, UP filter, as src/prepare.py)",
            "bg": "png variant and official: JPEG quality 95",
            "npy": "npy variant: fg and bg as uint8 .npy (src/prepare.py fg_bg_format=npy), memory-mapped",
            "packed": "packed variant: image, alpha, fg, bg as uint8 .npy in train/packed (pack=true), mmap",
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"One training sample, augmentation=paper, {len(paths)} images of 1080 px short side, one core")
    count = len(times["official"])
    print(f"(median of {count} samples each; bit-identical to official for the same choices: {identical})\n")
    print(
        "| stage | official (PIL, full-size trimap) | ours, PNG+JPEG fg/bg | ratio | ours, .npy fg/bg "
        "| ratio | ours, packed | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, key in (
        ("decode (packed: map) 4 files", "_decode"),
        ("trimap, crop, resize, normalise", "_rest"),
        ("whole", ""),
    ):
        o = ms[f"official{key}"]
        cells = " | ".join(f"{ms[f'{v}{key}']:.1f} ms | {ms[f'{v}{key}'] / o:.2f}" for v in variants)
        row = f"| {label} | {o:.1f} ms | {cells} |"
        print(row.replace("| whole |", "| **whole sample** |") if not key else row)
    print("\n| file (median read) | official (PIL) | ours (OpenCV) | ours (.npy, mmap: header only) |")
    print("|---|---:|---:|---:|")
    for key, label in (("image", "image JPEG"), ("alpha", "alpha PNG"), ("fg", "fg PNG"), ("bg", "bg JPEG")):
        npy = f"{per_file['npy'][key]:.2f} ms" if key in per_file["npy"] else "(same file)"
        print(f"| {label} | {per_file['official'][key]:.1f} ms | {per_file['png'][key]:.1f} ms | {npy} |")
    print("\nratio ours/official: " + ", ".join(f"{v} {r:.3f}" for v, r in ratios.items()))
    if loader_rate:
        rates = ", ".join(f"{v} {r:.1f}" for v, r in loader_rate.items())
        print(
            f"DataLoader, {args.loader_workers} workers, batch 8, samples/s: {rates} (all cores, not pinned)"
        )
    print(f"load average {result['setup']['load_average']}; wrote {args.out}")


if __name__ == "__main__":
    main()
