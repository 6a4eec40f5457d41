"""The real training loop with its real input pipeline, against the same loop on device-resident tensors.

What a GPU node sees: Lightning's ``Trainer.fit`` with our ``P3MLitModule`` and ``P3M10kDataModule``
composed from the real configs (``conf/train.yaml``: augmentation=paper, loss=paper, ResNet-34),
DataLoader workers decoding nothing (the packed format, ``src/prepare.py pack=true``), at the paper's
batch of 8 and 512 px, bf16 autocast + channels-last by default. It reports:

- images/s of the loop with the DataLoader, and of the same loop (same Trainer settings, same module)
  fed one batch that already sits on the device, repeated: the difference is what the input pipeline
  costs;
- the share of the loop's time spent waiting for data: from the end of one step (device synchronised)
  to the start of the next, the time Lightning spends fetching the next batch and copying it over;
- evaluation images/s: HYBRID (``infer_alpha``, ``resize_mode=paper`` by default) on the evaluation
  images, network + resizing + fusion (no metrics).

Data: ``--root`` (a P3M-10k-layout root; packed here first if it is not), or else ``--num-train``
synthetic portraits of ``--size`` (default 1080x1440, the P3M-10k scale) generated in parallel
shards by the synthetic generator, hard-linked into one root under ``--data-dir`` and packed.

    python bench/bench_loader.py --device cuda [--num-train 256] [--workers 8] [--steps 60]
    python bench/bench_loader.py --device cpu --size 96 128 --num-train 8 --steps 2 --batch 2 \\
        --train-size 64 --crop-sizes 64 80 --workers 1 --precision fp32   # the CPU smoke run (tests)

Prints a markdown table and writes bench/results/loader.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the clone's p3m, installed or not

import lightning as L  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from p3m.data.packed import pack_training_set  # noqa: E402
from p3m.data.synthetic import ensure_synthetic_dataset  # noqa: E402
from p3m.models.test_time import infer_alpha  # noqa: E402

TRAIN_FOLDERS = ("blurred_image", "mask", "fg_blurred", "bg", "facemask")
EVAL_FOLDERS = ("P3M-500-P", "P3M-500-NP")


def _shard(args: tuple[Path, int, int, tuple[int, int], int]) -> Path:
    root, num_train, num_test, size, seed = args
    return ensure_synthetic_dataset(
        root, num_train=num_train, num_test=num_test, size=size, seed=seed, num_faces=0
    )


def synthetic_root(
    data_dir: Path, num_train: int, num_eval: int, size: tuple[int, int], workers: int
) -> Path:
    """A P3M-10k-layout root of ``num_train`` generated portraits, made by ``workers`` parallel shards.

    Each shard is an ordinary synthetic root (its own seed); the bench root hard-links their files
    under shard-prefixed stems (no copies), with the evaluation images of shard 0.
    """
    root = data_dir / f"bench_{num_train}x{size[0]}x{size[1]}"
    marker = root / ".complete"
    if marker.is_file():
        return root
    shards = max(1, min(workers, num_train))
    counts = [num_train // shards + (i < num_train % shards) for i in range(shards)]
    jobs = [
        (data_dir / f"shard{i}_{size[0]}x{size[1]}_{c}", c, num_eval if i == 0 else 0, size, i)
        for i, c in enumerate(counts)
    ]
    with ProcessPoolExecutor(shards) as pool:
        made = list(pool.map(_shard, jobs))
    for i, shard in enumerate(made):
        for folder in TRAIN_FOLDERS:
            (root / "train" / folder).mkdir(parents=True, exist_ok=True)
            for path in (shard / "train" / folder).iterdir():
                target = root / "train" / folder / f"s{i}_{path.name}"
                if not target.exists():
                    os.link(path, target)
    for split in EVAL_FOLDERS:
        for folder in (made[0] / "validation" / split).iterdir():
            (root / "validation" / split / folder.name).mkdir(parents=True, exist_ok=True)
            for path in folder.iterdir():
                target = root / "validation" / split / folder.name / path.name
                if not target.exists():
                    os.link(path, target)
    marker.write_text("complete\n")
    return root


class LoopTimer(L.Callback):
    """Per training step: the wait for its batch (previous step's end to this start) and the step itself.

    The device is synchronised at each step's end, so a step's time is its compute, not its launch.
    """

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.steps: list[float] = []
        self._end: float | None = None
        self._start = 0.0

    def _sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self.waits.append(self._start - self._end)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args: Any) -> None:
        self._sync(module)
        self._end = time.perf_counter()
        self.steps.append(self._end - self._start)

    def summary(self, warmup: int, batch: int) -> dict[str, float]:
        """Images/s and the waiting share over the steps after ``warmup``."""
        steps, waits = self.steps[warmup:], self.waits[warmup:]  # waits[i] precedes steps[i + 1]
        total = sum(steps) + sum(waits[: len(steps)])
        return {
            "images_per_s": batch * len(steps) / total,
            "step_ms_median": 1e3 * statistics.median(steps),
            "wait_ms_median": 1e3 * statistics.median(waits) if waits else 0.0,
            "wait_share": sum(waits[: len(steps)]) / total,
            "steps": len(steps),
        }


class Repeat:
    """One batch, ``count`` times: an iterable Lightning runs as a single training loader."""

    def __init__(self, batch: dict[str, torch.Tensor], count: int) -> None:
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Any:
        return iter([self.batch] * self.count)


def compose_config(args: argparse.Namespace, root: Path) -> Any:
    """The real training config, for this root and these settings."""
    precision = {"bf16": "bf16-mixed", "fp32": "32-true"}[args.precision]
    overrides = [
        f"data.root={root}",
        f"data.batch_size={args.batch}",
        f"data.num_workers={args.workers}",
        # a small bench set has epochs of a few steps: keep the workers, as P3M-10k's epochs of
        # 1,178 steps make their restart negligible
        "data.persistent_workers=true",
        f"data.train_size={args.train_size}",
        f"data.crop_sizes=[{','.join(str(c) for c in args.crop_sizes)}]",
        f"backbone={args.backbone}",
        "backbone.pretrained=null",
        f"model.channels_last={str(not args.contiguous).lower()}",
        "~logger",
        "~callbacks",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        "trainer.devices=1",
        "trainer.sync_batchnorm=false",
        f"trainer.precision={precision}",
        f"trainer.max_steps={args.warmup + args.steps}",
        "trainer.min_epochs=0",
        "+trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        f"trainer.default_root_dir={args.data_dir / 'lightning'}",
    ]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def run_loop(cfg: Any, loader: Any, model: L.LightningModule, warmup: int, batch: int) -> dict[str, float]:
    """``Trainer.fit`` of ``model`` over ``loader`` (a DataLoader or any iterable of batches), timed."""
    timer = LoopTimer()
    trainer = instantiate(cfg.trainer, callbacks=[timer], logger=False)
    trainer.fit(model, train_dataloaders=loader)
    return timer.summary(warmup, batch)


def eval_images_per_s(model: L.LightningModule, datamodule: Any, args: argparse.Namespace) -> dict[str, Any]:
    """HYBRID inference (network + resizing + fusion) over the evaluation images, images/s."""
    net = model.net.eval()
    device = next(net.parameters()).device
    datamodule.setup("test")
    images = [s["image"] for loader in datamodule.test_dataloader() for s in loader][: args.eval_images]
    times = []
    with torch.no_grad():
        for round_ in range(2):  # the first round warms up (cuDNN autotuning, allocator)
            for image in images:
                image = image.to(device)
                start = time.perf_counter()
                alpha = infer_alpha(net, image, "hybrid", args.resize_mode).alpha
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if round_:
                    times.append(time.perf_counter() - start)
                assert alpha.shape[-2:] == image.shape[-2:]
    return {
        "images_per_s": len(times) / sum(times),
        "images": len(images),
        "size": list(images[0].shape[-2:]),
        "resize_mode": args.resize_mode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--root", type=Path, default=None, help="P3M-10k-layout root (default: synthetic)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/p3m_bench_loader"))
    parser.add_argument("--num-train", type=int, default=256)
    parser.add_argument("--size", type=int, nargs=2, default=[1080, 1440], help="synthetic (height, width)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--train-size", type=int, default=512)
    parser.add_argument("--crop-sizes", type=int, nargs="+", default=[512, 768, 1024])
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--contiguous", action="store_true", help="no channels-last")
    parser.add_argument("--eval-images", type=int, default=8)
    parser.add_argument("--resize-mode", default="paper")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "loader.json")
    args = parser.parse_args()

    start = time.perf_counter()
    cpus = os.cpu_count() or 1
    if args.root is None:
        root = synthetic_root(
            args.data_dir, args.num_train, args.eval_images // 2 + 1, tuple(args.size), cpus
        )
    else:
        root = args.root
    generated = time.perf_counter()
    # one process per 16 images: a pool's start-up costs more than packing a handful
    packed = pack_training_set(root, workers=max(1, min(cpus, args.num_train // 16)), progress=False)
    if packed.failed:
        raise SystemExit(f"packing failed for {len(packed.failed)} stems: {packed.failed}")
    data_s = {"generate_s": generated - start, "pack_s": time.perf_counter() - generated}

    cfg = compose_config(args, root)
    L.seed_everything(0, workers=True)
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.data, require_fg_bg="composition" in model.loss.active_terms)
    datamodule.setup("fit")
    assert {f.image.suffix for f in datamodule.train_set.files} == {".npy"}, "the packed format is not read"
    loader_row = run_loop(cfg, datamodule.train_dataloader(), model, args.warmup, args.batch)

    device = model.device
    batch = next(iter(datamodule.train_dataloader()))
    batch = {k: v.to(device) for k, v in batch.items()}
    resident = Repeat(batch, args.warmup + args.steps)
    device_row = run_loop(cfg, resident, model, args.warmup, args.batch)
    eval_row = eval_images_per_s(model, datamodule, args)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    result = {
        "device": name,
        "loader": loader_row,
        "device_tensors": device_row,
        "loader_vs_device": loader_row["images_per_s"] / device_row["images_per_s"],
        "eval_hybrid": eval_row,
        "data": data_s | {"root": str(root), "train_images": len(datamodule.train_set)},
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out",)
        }
        | {"cpus": cpus, "torch": torch.__version__},
        "command": " ".join(["python", "bench/bench_loader.py", *sys.argv[1:]]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nTraining loop, {args.backbone}, batch {args.batch} at {args.train_size} px, {args.precision}"
        f"{'' if args.contiguous else ' + channels-last'}, {name}, {args.workers} DataLoader workers, "
        f"{len(datamodule.train_set)} packed images of {args.size[0]}x{args.size[1]}\n"
    )
    print("| input | images/s | step (median) | wait for data (median) | share of time waiting |")
    print("|---|---:|---:|---:|---:|")
    for label, row in (("DataLoader, packed", loader_row), ("one batch on the device", device_row)):
        print(
            f"| {label} | {row['images_per_s']:.1f} | {row['step_ms_median']:.1f} ms | "
            f"{row['wait_ms_median']:.1f} ms | {row['wait_share']:.1%} |"
        )
    print(f"\nloader / device tensors: {result['loader_vs_device']:.2f}x")
    print(
        f"eval HYBRID (resize_mode={args.resize_mode}): {eval_row['images_per_s']:.2f} images/s "
        f"({eval_row['images']} images of {eval_row['size'][0]}x{eval_row['size'][1]})"
    )
    print(
        f"data: generated in {data_s['generate_s']:.0f} s, packed in {data_s['pack_s']:.0f} s; "
        f"wrote {args.out}"
    )


if __name__ == "__main__":
    main()
