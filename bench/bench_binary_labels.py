"""Fine-tuning on binary masks: true soft mattes vs thresholded masks (naive) vs the binary-label mode.

On the synthetic portraits, which have exact soft alphas:

1. a starting network is trained from scratch on part A (soft mattes), with ``data=folder``;
2. it is fine-tuned on part B four ways, every other setting equal: with the true soft mattes; with
   the mattes thresholded at 128 and trained on as mattes (``data.labels=soft``: the naive way); and
   with the same thresholded masks in binary-label mode (``data.labels=auto`` detects them), the band
   unsupervised (``band_labels=ignore``) or labelled by the starting network (``pseudo``);
3. the starting network and the four fine-tuned ones (their last checkpoint: the held-out part of B
   has binary labels in three runs, so a best-checkpoint choice would differ between runs) are
   evaluated with ``src/eval.py`` (HYBRID) on held-out synthetic portraits (P3M-500-NP of the
   synthetic set, never trained on) and on the 8 sample portraits (tests/fixtures/p3m_samples,
   shrunk to the synthetic portraits' short side; trimaps remade from their mattes): SAD and MSE
   over the whole image and in the trimap's transition band (``sad_t``, ``mse_t``).

Every step is a real command (``python src/train.py ...``, ``python src/eval.py ...``) and is skipped
when its output exists, so an interrupted run resumes (``--fresh`` starts over).

    python bench/bench_binary_labels.py [--out bench/results/binary_labels] [--start-steps 150]
        [--tune-steps 60] [--size 128 96] [--train-size 64] [--crops 48 64 88] [--train 40] [--test 12]
        [--variants soft naive binary-ignore binary-pseudo]

First, without training, how much of each true matte's soft region the band of its thresholded mask
holds, per band kernel (``--coverage-only`` stops there): <out>/band_coverage.md.

Prints a markdown table and writes <out>/table.md and <out>/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

from p3m.data.io import read_image, read_mask  # noqa: E402
from p3m.data.labels import band_kernel_for, binarize, transition_band  # noqa: E402
from p3m.data.synthetic import ensure_synthetic_dataset  # noqa: E402
from p3m.data.trimap import trimap_from_alpha  # noqa: E402
from p3m.utils.conventions import kernel_for_size  # noqa: E402

SAMPLES = REPO / "tests" / "fixtures" / "p3m_samples"
# name -> (label folder, data.labels, data.band_labels)
VARIANTS = {
    "soft": ("soft", "soft", "ignore"),
    "naive": ("binary", "soft", "ignore"),
    "binary-ignore": ("binary", "auto", "ignore"),
    "binary-pseudo": ("binary", "auto", "pseudo"),
}
METRICS = ("sad_t", "mse_t", "sad", "mse")


def run(cmd: list[str], log: Path) -> None:
    """Run a command, its output into ``log``; stop with the log's tail if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    # one thread: on a busy 2-core machine OpenMP's spin-waiting made every step several times slower
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    with log.open("w") as fh:
        done = subprocess.run(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env)
    print(f"  {time.perf_counter() - start:.0f} s -> {log}", flush=True)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}):\n" + "\n".join(log.read_text().splitlines()[-30:]))


def link_folder(pairs: list[tuple[Path, Path]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for source, name in pairs:
        target = folder / name
        if not target.exists():
            target.symlink_to(source)


def make_folders(synthetic: Path, out: Path, train: int) -> None:
    """Part A (start) and part B (fine-tune: soft mattes and thresholded masks) as data=folder folders."""
    images = sorted((synthetic / "train" / "original_image").iterdir())[:train]
    half = len(images) // 2
    for part, chosen in (("start", images[:half]), ("tune", images[half:])):
        link_folder([(p, p.name) for p in chosen], out / part / "images")
        link_folder(
            [(synthetic / "train" / "mask" / f"{p.stem}.png", f"{p.stem}.png") for p in chosen],
            out / part / "soft",
        )
    binary = out / "tune" / "binary"
    binary.mkdir(exist_ok=True)
    for matte in sorted((out / "tune" / "soft").iterdir()):
        if not (binary / matte.name).exists():
            cv2.imwrite(str(binary / matte.name), np.where(read_mask(matte) >= 128, 255, 0).astype(np.uint8))


def make_samples(out: Path, short_side: int) -> Path:
    """The 8 distinct sample portraits at the synthetic scale, in an evaluation-split layout."""
    root = out / "samples"
    if (root / "done").exists():
        return root
    sources = [
        (SAMPLES / "train" / "blurred_image", SAMPLES / "train" / "mask"),
        (
            SAMPLES / "validation" / "P3M-500-NP" / "original_image",
            SAMPLES / "validation" / "P3M-500-NP" / "mask",
        ),
    ]
    for sub in ("image", "mask", "trimap"):
        (root / "samples" / sub).mkdir(parents=True, exist_ok=True)
    for image_dir, mask_dir in sources:
        for path in sorted(image_dir.iterdir()):
            image, mask = read_image(path), read_mask(mask_dir / f"{path.stem}.png")
            h, w = mask.shape
            scale = short_side / min(h, w)
            size = (round(w * scale), round(h * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(root / "samples" / "image" / f"{path.stem}.png"), image[:, :, ::-1])
            cv2.imwrite(str(root / "samples" / "mask" / f"{path.stem}.png"), mask)
            trimap = trimap_from_alpha(mask, kernel_for_size(*mask.shape))
            cv2.imwrite(str(root / "samples" / "trimap" / f"{path.stem}.png"), trimap)
    (root / "done").touch()
    return root


def train(
    out: Path,
    name: str,
    images: Path,
    mattes: Path,
    args: argparse.Namespace,
    extra: list[str],
    seed: int = 0,
) -> Path:
    """``src/train.py data=folder`` for ``steps`` steps; returns the last checkpoint."""
    run_dir = out / "runs" / name
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        return ckpt
    shutil.rmtree(run_dir, ignore_errors=True)
    count = len(list(images.iterdir()))
    held = max(1, round(0.1 * count))
    steps, batch = args.start_steps if name == "start" else args.tune_steps, args.batch
    epochs = max(1, math.ceil(steps / max(1, (count - held) // batch)))
    cmd = [
        sys.executable, "src/train.py", "data=folder", f"data.images={images}", f"data.mattes={mattes}",
        f"data.cache_dir={out / 'cache'}", "privacy=none", "trainer=cpu", "logger=csv", f"seed={seed}",
        f"data.train_size={args.train_size}", f"data.crop_sizes=[{','.join(map(str, args.crops))}]",
        f"data.batch_size={batch}", "data.num_workers=0",  # no worker process respawned every short epoch
        "data.prepare_workers=1", f"trainer.max_epochs={epochs}", f"trainer.check_val_every_n_epoch={epochs}",
        "trainer.num_sanity_val_steps=0", "model.heavy_every_n_epochs=0", "callbacks.progress_bar=null",
        # one checkpoint, at the end (the only validation), instead of last.ckpt after every short epoch
        "callbacks.last_checkpoint=null", "callbacks.model_checkpoint.save_last=true",
        f"task_name=binary_labels_{name}", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    run(cmd, out / "logs" / f"train_{name}.log")
    return ckpt


def evaluate(out: Path, name: str, ckpt: Path, synthetic: Path, samples: Path) -> dict[str, dict[str, float]]:
    """``src/eval.py`` (HYBRID) on the held-out synthetic portraits and the shrunk sample portraits."""
    results = {}
    sets = {
        "synthetic": (
            synthetic / "validation",
            "P3M-500-NP/original_image",
            "P3M-500-NP/mask",
            "P3M-500-NP/trimap",
        ),
        "samples": (samples, "samples/image", "samples/mask", "samples/trimap"),
    }
    for set_name, (root, image_dir, mask_dir, trimap_dir) in sets.items():
        run_dir = out / "eval" / f"{name}_{set_name}"
        if not (run_dir / "metrics.json").exists():
            split = (
                f"[{{name: {set_name}, prefix: p, image_dir: {image_dir}, mask_dir: {mask_dir}, "
                f"trimap_dir: {trimap_dir}}}]"
            )
            cmd = [
                sys.executable, "src/eval.py", f"ckpt_path={ckpt}", f"data.root={root}",
                f"data.eval_splits={split}", "test_strategy=hybrid", "resize_mode=fast",
                f"metrics=[{','.join(METRICS)}]", "trainer=cpu", f"hydra.run.dir={run_dir}",
                "task_name=binary_labels_eval",
            ]  # fmt: skip
            run(cmd, out / "logs" / f"eval_{name}_{set_name}.log")
        results[set_name] = json.loads((run_dir / "metrics.json").read_text())[set_name]["mean"]
    return results


def band_coverage(synthetic: Path, kernels: tuple[int, ...] = (25, 41, 61, 81)) -> str:
    """How much of a true matte's soft region the band of its thresholded mask holds, per band kernel.

    Per image: the share of the soft pixels (0 < alpha < 255) inside the band, and the band's share
    of the image; the table gives the minimum and mean of the first over the images, the mean of the
    second, for the sample portraits' mattes and the synthetic test portraits'.
    """
    sets = {
        "samples": sorted((SAMPLES / "train" / "mask").iterdir())
        + sorted((SAMPLES / "validation" / "P3M-500-NP" / "mask").iterdir()),
        "synthetic": sorted((synthetic / "validation" / "P3M-500-NP" / "mask").iterdir()),
    }
    rows = [
        "| mattes | band kernel at 1080 px | soft pixels in the band: min | mean | band / image |",
        "|---|---|---|---|---|",
    ]
    for name, paths in sets.items():
        alphas = [read_mask(p) for p in paths]
        for kernel in kernels:
            covered, area = [], []
            for alpha in alphas:
                band = transition_band(binarize(alpha, 0, 255), band_kernel_for(*alpha.shape, kernel))
                soft = (alpha > 0) & (alpha < 255)
                covered.append(band[soft].mean())
                area.append(band.mean())
            cells = (f"{name} ({len(alphas)})", kernel, f"{min(covered):.1%}", f"{np.mean(covered):.1%}")
            rows.append("| " + " | ".join(map(str, cells)) + f" | {np.mean(area):.1%} |")
    return "\n".join(rows)


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per network, SAD/MSE in the band and whole image per evaluation set; MSE x 1e3."""
    head = "| network | " + " | ".join(f"{s} {m}" for s in ("synthetic", "samples") for m in METRICS) + " |"
    rows = [head, "|---" * (1 + 2 * len(METRICS)) + "|"]
    for name, sets in results.items():
        cells = []
        for set_name in ("synthetic", "samples"):
            for metric in METRICS:
                value = sets[set_name][metric]
                cells.append(f"{value * 1e3:.2f}" if metric.startswith("mse") else f"{value:.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "binary_labels")
    parser.add_argument("--start-steps", type=int, default=150, help="training steps of the starting network")
    parser.add_argument("--tune-steps", type=int, default=60, help="training steps of each fine-tune")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 96), help="synthetic portraits (H W)")
    parser.add_argument("--train-size", type=int, default=64, help="training side (data.train_size)")
    parser.add_argument("--crops", type=int, nargs="+", default=(48, 64, 88), help="data.crop_sizes")
    parser.add_argument("--train", type=int, default=40, help="synthetic training portraits (half A, half B)")
    parser.add_argument("--test", type=int, default=12, help="held-out synthetic portraits")
    parser.add_argument("--start-lr", type=float, default=3e-4)
    parser.add_argument("--tune-lr", type=float, default=1e-4)
    parser.add_argument(
        "--tune-seed",
        type=int,
        default=0,
        help="seed of the fine-tunes (crops, order); other than 0, "
        "their runs are named <variant>-seed<N> beside the seed-0 ones, and the starting network is shared",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="fine-tunes to run (one bench process at a time: naive and binary-* share a derived folder)",
    )
    parser.add_argument("--fresh", action="store_true", help="delete --out first")
    parser.add_argument(
        "--coverage-only", action="store_true", help="only the band coverage table (no training)"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    synthetic = ensure_synthetic_dataset(
        out / "synthetic", num_train=args.train, num_test=args.test, size=tuple(args.size), seed=0
    )
    coverage = band_coverage(synthetic)
    print(coverage)
    (out / "band_coverage.md").write_text(coverage + "\n")
    if args.coverage_only:
        return
    make_folders(synthetic, out, args.train)
    samples = make_samples(out, min(args.size))
    start = train(
        out, "start", out / "start" / "images", out / "start" / "soft", args,
        ["backbone.pretrained=null", "data.labels=soft", f"model.optimizer.lr={args.start_lr}"],
    )  # fmt: skip
    results = {"start": evaluate(out, "start", start, synthetic, samples)}
    for name in args.variants:
        labels_dir, labels, band = VARIANTS[name]
        extra = [
            f"model.init_from={start}",
            f"data.labels={labels}",
            f"data.band_labels={band}",
            f"model.optimizer.lr={args.tune_lr}",
        ]
        run_name = name if args.tune_seed == 0 else f"{name}-seed{args.tune_seed}"
        images, mattes = out / "tune" / "images", out / "tune" / labels_dir
        ckpt = train(out, run_name, images, mattes, args, extra, seed=args.tune_seed)
        results[run_name] = evaluate(out, run_name, ckpt, synthetic, samples)
    text = table(results)
    print(text)
    (out / "table.md").write_text(text + "\n")
    (out / "results.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2)
    )
    print(f"{time.perf_counter() - started:.0f} s in all; {out / 'table.md'}")


if __name__ == "__main__":
    main()
