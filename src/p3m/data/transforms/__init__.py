"""Training pipelines (conf/augmentation): ``paper``, ``ijcv``, ``none``, ``strong``.

Each is a callable ``pipeline(sample, rng) -> dict[str, Tensor]`` (see :mod:`.base` for the keys)
with ``with_geometry(crop_sizes, out_size)`` to rescale it for another dataset.
"""

from p3m.data.transforms.base import IMAGENET_MEAN, IMAGENET_STD, normalise_image, resize_maps
from p3m.data.transforms.crop import CropChoices, IJCVTransform, PaperTransform, requantize_trimap
from p3m.data.transforms.resize import ResizeTransform
from p3m.data.transforms.strong import StrongTransform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CropChoices",
    "IJCVTransform",
    "PaperTransform",
    "ResizeTransform",
    "StrongTransform",
    "normalise_image",
    "requantize_trimap",
    "resize_maps",
]
