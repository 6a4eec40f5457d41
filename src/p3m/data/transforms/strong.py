"""augmentation=strong: the paper pipeline followed by geometric and photometric augmentation.

After the official crop / flip / resize (:class:`~p3m.data.transforms.crop.PaperTransform`, so the
crop statistics are the paper's), albumentations applies, on the uint8 training-size maps:

Geometric, one random affine (rotation, scale, translation) applied identically to every map, so
they stay aligned:

- image, fg, bg and alpha: bilinear, like the crop resize;
- trimap and face mask: nearest, so no new label values appear (the trimap keeps the values of
  the paper pipeline's bilinear resize, which the segmentation target already handles);
- out-of-image pixels: reflected (``BORDER_REFLECT_101``) for every map, so the reflected image
  still matches its reflected alpha, fg and bg (a constant border would paste black background).

Photometric, the same random parameters for image, fg and bg, never for alpha, trimap or mask:

- brightness/contrast as ``x * a + b`` (``brightness_by_max=True``: no dependence on the image's
  mean, so all three get the same per-pixel function) and a hue/saturation/value shift (per-pixel
  as well). Because image, fg and bg receive the same per-pixel function, ``image = alpha * fg +
  (1 - alpha) * bg`` still holds exactly where alpha is 0 or 1 and, for the affine brightness /
  contrast part, everywhere up to clipping; the HSV shift is non-linear, so in the transition
  region the relation holds only approximately (as it already does for estimated fg / bg).
  Augmenting only the image would make the composition loss chase the augmentation instead.

Albumentations draws from its own generator; it is re-seeded for every sample from the pipeline's
``rng``, so samples stay reproducible per worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from p3m.data.transforms.base import as_int_tuple, check_probability, to_batch_item
from p3m.data.transforms.crop import CropChoices, PaperTransform

_SMOOTH_TARGETS = ("fg", "bg", "alpha")  # warped bilinearly, as albumentations "image" targets
_LABEL_TARGETS = ("trimap", "facemask")  # warped with nearest neighbour, as "mask" targets
_COLOUR_TARGETS = ("fg", "bg")  # receive the image's photometric change


def _check_range(value: Any, key: str, low: float, high: float) -> tuple[float, float]:
    items = [value, value] if isinstance(value, (int, float)) else list(value)
    if (
        len(items) != 2
        or not all(isinstance(v, (int, float)) for v in items)
        or not low <= items[0] <= items[1] <= high
    ):
        raise ValueError(
            f"augmentation.{key} must be [low, high] with {low} <= low <= high <= {high}, got {value!r}"
        )
    return float(items[0]), float(items[1])


def _check_limit(value: Any, key: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ValueError(f"augmentation.{key} must be a number in [0, {high}], got {value!r}")
    return float(value)


@dataclass
class StrongTransform(PaperTransform):
    """The paper pipeline plus consistent affine and colour augmentation (see the module docstring).

    Args:
        crop_sizes, out_size, kernel_range, transition_prob, flip_prob: as :class:`PaperTransform`.
        affine_prob: probability of the random affine.
        rotate_limit: rotation drawn from [-limit, limit] degrees.
        scale_range: zoom factor range.
        translate_limit: shift drawn from [-limit, limit] of the side, per axis.
        colour_prob: probability of each photometric transform.
        brightness_limit, contrast_limit: ranges [-limit, limit] of the brightness / contrast change.
        hue_shift_limit, sat_shift_limit, val_shift_limit: HSV shifts (OpenCV units: hue 0..180).
    """

    affine_prob: float = 0.5
    rotate_limit: float = 10.0
    scale_range: Sequence[float] = (0.9, 1.1)
    translate_limit: float = 0.05
    colour_prob: float = 0.5
    brightness_limit: float = 0.2
    contrast_limit: float = 0.2
    hue_shift_limit: int = 10
    sat_shift_limit: int = 20
    val_shift_limit: int = 10
    _pipelines: dict[frozenset[str], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.affine_prob = check_probability(self.affine_prob, "affine_prob")
        self.colour_prob = check_probability(self.colour_prob, "colour_prob")
        self.rotate_limit = _check_limit(self.rotate_limit, "rotate_limit", 180.0)
        self.scale_range = _check_range(self.scale_range, "scale_range", 0.1, 10.0)
        self.translate_limit = _check_limit(self.translate_limit, "translate_limit", 0.5)
        self.brightness_limit = _check_limit(self.brightness_limit, "brightness_limit", 1.0)
        self.contrast_limit = _check_limit(self.contrast_limit, "contrast_limit", 1.0)
        for key in ("hue_shift_limit", "sat_shift_limit", "val_shift_limit"):
            setattr(self, key, as_int_tuple(getattr(self, key), key, minimum=0)[0])

    def __getstate__(self) -> dict[str, Any]:
        # Albumentations pipelines are rebuilt lazily in each worker process.
        state = dict(self.__dict__)
        state["_pipelines"] = {}
        return state

    def _build(self, keys: frozenset[str]) -> tuple[Any, Any]:
        os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check from workers
        import albumentations as A

        geometric_targets = {k: "image" for k in _SMOOTH_TARGETS if k in keys}
        geometric_targets.update({k: "mask" for k in _LABEL_TARGETS if k in keys})
        geometric = A.Compose(
            [
                A.Affine(
                    scale=self.scale_range,
                    translate_percent=(-self.translate_limit, self.translate_limit),
                    rotate=(-self.rotate_limit, self.rotate_limit),
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_NEAREST,
                    border_mode=cv2.BORDER_REFLECT_101,
                    p=self.affine_prob,
                )
            ],
            additional_targets=geometric_targets,
        )
        photometric = A.Compose(
            [
                A.RandomBrightnessContrast(
                    brightness_limit=self.brightness_limit,
                    contrast_limit=self.contrast_limit,
                    brightness_by_max=True,
                    p=self.colour_prob,
                ),
                A.HueSaturationValue(
                    hue_shift_limit=self.hue_shift_limit,
                    sat_shift_limit=self.sat_shift_limit,
                    val_shift_limit=self.val_shift_limit,
                    p=self.colour_prob,
                ),
            ],
            additional_targets={k: "image" for k in _COLOUR_TARGETS if k in keys},
        )
        return geometric, photometric

    def augment(self, maps: Mapping[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        """Apply the affine and colour augmentation to uint8 training-size maps, seeded."""
        keys = frozenset(maps)
        if keys not in self._pipelines:
            self._pipelines[keys] = self._build(keys)
        geometric, photometric = self._pipelines[keys]
        geometric.set_random_seed(seed)
        photometric.set_random_seed(seed + 1)
        data = {k: np.ascontiguousarray(v) for k, v in maps.items()}
        warped = geometric(**{k: data[k] for k in ("image", *_SMOOTH_TARGETS, *_LABEL_TARGETS) if k in data})
        colour = photometric(**{k: warped[k] for k in ("image", *_COLOUR_TARGETS) if k in warped})
        out = {k: warped[k] for k in maps}
        out.update({k: colour[k] for k in ("image", *_COLOUR_TARGETS) if k in colour})
        for key in (
            "alpha",
            *_LABEL_TARGETS,
        ):  # albumentations may hand single-channel maps back as (H, W, 1)
            if key in out and out[key].ndim == 3:
                out[key] = out[key][:, :, 0]
        return out

    def apply(
        self, sample: Mapping[str, np.ndarray], choices: CropChoices, augment_seed: int = 0
    ) -> dict[str, torch.Tensor]:
        """The training item for fixed crop choices and a fixed augmentation seed (deterministic)."""
        return to_batch_item(self.augment(self.crop_resize(sample, choices), augment_seed))

    def __call__(self, sample: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Prepare, draw the crop choices and the augmentation seed, and build the training item."""
        prepared = self.prepare(sample)
        choices = self.draw(prepared["alpha"], rng)
        return self.apply(prepared, choices, int(rng.integers(2**31 - 2)))
