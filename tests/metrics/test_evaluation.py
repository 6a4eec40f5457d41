"""The one evaluator of validation, test and eval.py: split means, sad_privacy, gaps, names, DDP gather."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from p3m.metrics import functional as F
from p3m.metrics.evaluation import Evaluator, SplitSpec
from p3m.metrics.privacy import sad_privacy
from tests.metrics import needs_fork, run_gloo_ranks
from tests.metrics.test_functional import random_mattes

SPLITS = [
    SplitSpec("P3M-500-P", "p", has_trimap=True, has_facemask=True),
    SplitSpec("P3M-500-NP", "np", has_trimap=True, gap_to="p"),
    SplitSpec("RWP-636", "rwp", has_trimap=False),
]
METRICS = ["sad", "mse", "sad_t", "sad_privacy"]


def _facemask(target: torch.Tensor, has_face: bool) -> torch.Tensor:
    mask = torch.zeros_like(target, dtype=torch.bool)
    if has_face:
        mask[..., :10, :12] = True
    return mask


def _feed(evaluator: Evaluator, indices: list[int], data: tuple[torch.Tensor, ...]) -> None:
    pred, target, trimap = data
    for i in indices:
        for split in range(len(SPLITS)):
            facemask = _facemask(target[i], has_face=i != 1) if split == 0 else None
            evaluator.update(split, f"img{i}", pred[i], target[i], trimap=trimap[i], facemask=facemask)


def test_means_per_image_values_privacy_and_gap_names() -> None:
    data = random_mattes(n=3, seed=3)
    pred, target, trimap = data
    evaluator = Evaluator(SPLITS, METRICS)
    _feed(evaluator, [0, 1, 2], data)
    results = evaluator.results()
    p, np_, rwp = results

    for i in range(3):  # per image: the functional core's values
        assert p.per_image[f"img{i}"]["sad"] == pytest.approx(float(F.sad(pred[i], target[i])))
        assert p.per_image[f"img{i}"]["sad_t"] == pytest.approx(
            float(F.sad_trimap(pred[i], target[i], trimap[i]))
        )
    # sad_privacy: only the P split has face masks, and image 1 has no face
    assert "sad_privacy" not in p.per_image["img1"] and "sad_privacy" not in np_.mean
    faces = [float(sad_privacy(pred[i], target[i], _facemask(target[i], True))) for i in (0, 2)]
    assert p.mean["sad_privacy"] == pytest.approx(sum(faces) / 2)
    assert list(p.mean) == METRICS and list(np_.mean) == ["sad", "mse", "sad_t"]
    assert list(rwp.mean) == ["sad", "mse"]  # no trimaps: no trimap metrics
    assert p.mean["sad"] == pytest.approx(sum(v["sad"] for v in p.per_image.values()) / 3)

    # names: <stage>/<prefix>/<metric>, the gap <stage>/np_minus_p/<metric>; RWP declares no base
    gaps = evaluator.gaps(results, "test")
    assert list(gaps) == ["test/np_minus_p"]
    assert gaps["test/np_minus_p"] == {k: np_.mean[k] - p.mean[k] for k in ("sad", "mse", "sad_t")}
    logged = evaluator.log_values(results, "val")
    assert {"val/p/sad", "val/p/sad_privacy", "val/np/sad_t", "val/rwp/mse", "val/np_minus_p/sad"} <= set(
        logged
    )
    assert not any(key.startswith("test/") or "rwp_minus" in key for key in logged)

    evaluator.reset()
    assert all(r.per_image == {} for r in evaluator.results())


def test_heavy_metrics_only_when_asked() -> None:
    data = random_mattes(n=2, seed=4)
    evaluator = Evaluator(SPLITS[:2], ["sad"], heavy_metrics=["grad"])
    for i in range(2):
        for split in range(2):
            evaluator.update(split, f"img{i}", data[0][i], data[1][i], trimap=data[2][i], heavy=False)
    assert list(evaluator.results(heavy=False)[0].mean) == ["sad"]
    evaluator.reset()
    for i in range(2):
        values = evaluator.update(0, f"img{i}", data[0][i], data[1][i], trimap=data[2][i], heavy=True)
        assert list(values) == ["sad", "grad"]


def test_bad_prefix_or_base_is_refused() -> None:
    with pytest.raises(ValueError, match=r"prefix 'val/p' holds a '/'"):
        Evaluator([SplitSpec("P3M-500-P", "val/p")], ["sad"])
    with pytest.raises(ValueError, match=r"gap_to='q' names no split's prefix"):
        Evaluator([SplitSpec("P3M-500-P", "p"), SplitSpec("P3M-500-NP", "np", gap_to="q")], ["sad"])


def _worker(rank: int, out_dir: str, data: tuple[torch.Tensor, ...]) -> None:
    """One rank of two: every other image (3 on rank 0, 2 on rank 1), as the evaluation sampler deals them."""
    evaluator = Evaluator(SPLITS, METRICS)
    _feed(evaluator, list(range(5))[rank::2], data)
    results = evaluator.results()
    torch.save([(r.mean, r.per_image) for r in results], Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow  # two processes (DDP)
@needs_fork
def test_two_processes_give_the_single_process_results(tmp_path: Path) -> None:
    data = random_mattes(n=5, seed=7)
    run_gloo_ranks(_worker, 2, str(tmp_path), data)
    single = Evaluator(SPLITS, METRICS)
    _feed(single, list(range(5)), data)
    expected = single.results()
    for rank in range(2):
        synced = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for (mean, per_image), result in zip(synced, expected, strict=True):
            assert per_image == result.per_image  # every image, from both ranks, the same values
            assert mean.keys() == result.mean.keys()
            for name, value in result.mean.items():
                assert mean[name] == pytest.approx(value, rel=1e-12), (rank, name)
