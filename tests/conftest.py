"""Shared fixtures: reference fixtures and sample portraits (tests/fixtures), and copies to write into."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import p3m.utils.hydra_app  # noqa: F401  (registers ${p3m.root:}, which conf/paths reads)
from p3m.data.synthetic import ensure_synthetic_dataset
from tests.fixtures import REFERENCE_DIR, SAMPLES_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]
INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"

# Tiny tensors gain nothing from intra-op threads, and on a busy 2-core machine OpenMP spin-waits made
# single calls up to hundreds of times slower; subprocess runs of the entry points keep the default.
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration (CLI runs, training, DDP, the wheel, the browser) is slow:
    ``make test-fast`` (``-m "not slow"``) leaves it out.

    Slow tests run first, so that the many short ones fill the workers' last minutes instead of one
    worker finishing a long test alone (``make test`` balances the workers with ``--dist worksteal``).
    """
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: file order otherwise


@pytest.fixture(scope="session", autouse=True)
def _wandb_dirs_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep W&B's run, staging and cache folders in the session's tmp dir, which pytest deletes.

    Offline runs stage artifacts (a logged checkpoint is ~0.5 GB) under ``~/.local/share/wandb`` until
    they are synced, so without this every run of the suite would leave gigabytes behind.
    """
    root = tmp_path_factory.mktemp("wandb")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("dir", "data_dir", "cache_dir", "artifact_dir", "config_dir"):
            (root / name).mkdir()
            mp.setenv(f"WANDB_{name.upper()}", str(root / name))
        yield


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Fixtures computed with the official code (tests/fixtures/reference; provenance in its README)."""
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def official_weights(reference_dir: Path) -> Callable[..., dict[str, torch.Tensor]]:
    """``official_weights(arch, seed=0, prefix="")``: stand-in weights in the official key layout, as
    the fixtures were computed with: ``fill_official.py`` of the reference folder filling
    ``models/<arch>_manifest.json`` (only its entries whose key starts with ``prefix``)."""
    spec = importlib.util.spec_from_file_location("fill_official", reference_dir / "fill_official.py")
    fill = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fill)

    def filled(arch: str, seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
        manifest = json.loads((reference_dir / "models" / f"{arch}_manifest.json").read_text())
        entries = [e for e in manifest["state_dict"] if e[0].startswith(prefix)]
        return fill.fill_state_dict({**manifest, "state_dict": entries}, seed=seed)

    return filled


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The 8 real P3M-10k sample portraits, in the official layout. Read-only: copy before writing."""
    return SAMPLES_DIR


@pytest.fixture
def samples_copy(samples_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample set in ``tmp_path``; nothing writes into the fixtures."""
    dst = tmp_path / "p3m_samples"
    shutil.copytree(samples_dir, dst)
    return dst


# A synthetic P3M-style dataset small enough for CPU training tests.
TINY_SYNTHETIC = {"num_train": 4, "num_test": 2, "size": (96, 64), "seed": 0}


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny synthetic dataset per test session (read-only for tests: copy before writing)."""
    return ensure_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), **TINY_SYNTHETIC)


def tiny_data_overrides(root: Path) -> list[str]:
    """Overrides that point ``data=synthetic`` at a tiny dataset and train at 64 px on the CPU."""
    return [
        "data=synthetic",
        f"data.root={root}",
        f"data.synthetic.num_train={TINY_SYNTHETIC['num_train']}",
        f"data.synthetic.num_test={TINY_SYNTHETIC['num_test']}",
        "data.synthetic.size=[96,64]",
        "data.train_size=64",
        "data.crop_sizes=[48,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
    ]


@pytest.fixture
def compose_config(tmp_path: Path) -> Iterator[Callable[..., DictConfig]]:
    """Compose a real config from conf/ as Hydra would, with run and log directories in ``tmp_path``.

    The composed config is installed as the current ``HydraConfig`` (as a running app has it) and
    removed afterwards: a sweep's ``hydra.mode=MULTIRUN`` left behind would make later tests' runs
    behave as multirun jobs.
    """

    def _compose(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            cfg = compose(
                config_name,
                overrides=[
                    *overrides,
                    f"paths.log_dir={tmp_path / 'logs'}",
                    f"paths.output_dir={tmp_path / 'run'}",
                    f"paths.work_dir={tmp_path}",
                    f"hydra.run.dir={tmp_path / 'run'}",
                ],
                return_hydra_config=True,
            )
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    HydraConfig.instance().cfg = None
