"""sad_privacy: SAD / 1000 inside the face mask, averaged over the images that have a face."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torchmetrics.utilities import dim_zero_sum

from p3m.metrics.privacy import SADPrivacy, sad_privacy


def test_hand_computed_case() -> None:
    # 8x8 image, a 2x2 face: 0.5 error on the 4 face pixels, error 1 outside is not counted
    target = torch.zeros(8, 8)
    pred = torch.ones(8, 8)
    face = torch.zeros(8, 8)
    face[2:4, 3:5] = 1
    pred[2:4, 3:5] = 0.5
    assert sad_privacy(pred, target, face).item() == pytest.approx(4 * 0.5 / 1000)
    metric = SADPrivacy()
    metric.update(pred[None, None], target[None, None], face[None, None])
    assert metric.compute().item() == pytest.approx(0.002)


def test_mask_conventions_threshold_and_dtypes() -> None:
    target = torch.zeros(1, 4, 4)
    pred = torch.full((1, 4, 4), 0.25)
    soft = torch.tensor([[0.5, 0.51, 0.0, 1.0]]).repeat(4, 1)[None]  # 0.5 itself is not face
    assert sad_privacy(pred, target, soft).item() == pytest.approx(8 * 0.25 / 1000)
    as_uint8 = (soft * 255).round().to(torch.uint8)  # 128 (0.502) counts, 0 does not
    assert sad_privacy(pred, target, as_uint8).item() == pytest.approx(12 * 0.25 / 1000)
    assert sad_privacy(pred, target, soft > 0.5).item() == pytest.approx(8 * 0.25 / 1000)


def test_accumulates_per_image_and_skips_images_without_a_face() -> None:
    gen = torch.Generator().manual_seed(0)
    metric = SADPrivacy()
    reference = []
    for _ in range(3):
        pred = torch.rand(2, 1, 16, 12, generator=gen)
        target = torch.rand(2, 1, 16, 12, generator=gen)
        face = torch.rand(2, 1, 16, 12, generator=gen) > 0.6
        face[1] = False  # the second image of each batch is a back view
        metric.update(pred, target, face)
        p, t, f = pred.double().numpy(), target.double().numpy(), face.numpy()
        reference.append(np.abs(p[0] - t[0])[f[0]].sum() / 1000)
    assert metric.num_images.item() == 3
    assert metric.compute().item() == pytest.approx(np.mean(reference), rel=1e-12)
    assert torch.isnan(sad_privacy(pred, target, face)[1])


def test_no_face_at_all_gives_nan() -> None:
    metric = SADPrivacy()
    metric.update(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    assert metric.num_images.item() == 0 and torch.isnan(metric.compute())


def test_states_sum_across_processes_and_pickle() -> None:
    a, b, both = SADPrivacy(), SADPrivacy(), SADPrivacy()
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.rand(1, 1, 8, 8, generator=gen), torch.rand(1, 1, 8, 8, generator=gen), torch.ones(1, 1, 8, 8))
        for _ in range(2)
    ]
    a.update(*batches[0])
    b.update(*batches[1])
    for batch in batches:
        both.update(*batch)
    assert a._reductions == {"score_sum": dim_zero_sum, "num_images": dim_zero_sum}
    a.merge_state(b)  # what the "sum" reduction does across processes
    assert a.compute().item() == pytest.approx(both.compute().item())
    restored = pickle.loads(pickle.dumps(both))
    assert restored.compute().item() == pytest.approx(both.compute().item())
    clone = both.clone()
    clone.update(*batches[0])
    assert clone.num_images.item() == 3 and both.num_images.item() == 2


def test_bad_inputs_name_the_argument() -> None:
    pred, target = torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8)
    with pytest.raises(ValueError, match="facemask has shape"):
        sad_privacy(pred, target, torch.ones(1, 1, 8, 7))
    with pytest.raises(ValueError, match=r"facemask must lie in \[0, 1\]"):
        sad_privacy(pred, target, torch.full((1, 1, 8, 8), 255.0))
    with pytest.raises(TypeError, match="facemask has dtype"):
        sad_privacy(pred, target, torch.ones(1, 1, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="pred must lie in"):
        sad_privacy(pred * 3, target, torch.ones(1, 1, 8, 8))
