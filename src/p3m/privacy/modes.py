"""The privacy modes of training (conf/privacy): one class each, behind one small protocol.

=============  ====================================================================================
``ppt``        face-blurred images only (train/blurred_image): the paper's setting; no extra step
``none``       non-anonymized images (train/original_image); no extra step
``obfuscate``  non-anonymized images whose face is obfuscated on the fly (``method`` blur, mosaic or
               zero) inside the face mask minus the alpha transition band, before any augmentation:
               the P3M-10k procedure applied to datasets that have originals
``cp``         P3M-CP: face-blurred images with a public face pasted over the blurred face
               (``level=image``: pixels, ICP; ``level=feature``: encoder features, FCP); see
               :mod:`p3m.privacy.copy_paste`
=============  ====================================================================================

A mode declares:

- ``reads``: which training folders it may read, whether they are anonymized and whether it needs
  face masks (a :class:`~p3m.data.layout.TrainingReads`, which the data module enforces);
- :meth:`PrivacyMode.sample_hook`: the step it adds around the augmentation of a training sample,
  and the extra folders that step reads (for the privacy audit);
- :meth:`PrivacyMode.training_forward`: the network's training forward, for a mode that acts inside
  the network (P3M-FCP);
- :meth:`PrivacyMode.describe`: its name and settings as plain values, for checkpoints and logs.

Each ``conf/privacy/<name>.yaml`` instantiates its class with ``_target_``, so Hydra rejects a key
the mode does not take. Adding a mode is one class here (or anywhere importable) and one YAML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

from torch import Tensor, nn

from p3m.data.layout import BLURRED_READS, ORIGINAL_READS, TrainingReads
from p3m.privacy.copy_paste import FaceAugment
from p3m.privacy.faces import PublicFaces
from p3m.privacy.obfuscate import DEFAULT_OPAQUE_ALPHA, FaceObfuscator
from p3m.privacy.training import CP_LEVELS, CopyPasteHook, ObfuscateHook

PUBLIC_FACES_DIR = "public_faces"  # P3M-CP's default source_dir, relative to data.root (the synthetic set)


@dataclass(frozen=True)
class PrivacyMode:
    """A privacy mode: what training may read and what it does to a sample (the ``ppt`` base)."""

    name: ClassVar[str] = "ppt"
    reads: ClassVar[TrainingReads] = BLURRED_READS

    def sample_hook(self, root: str | Path | None) -> tuple[Any, tuple[Path, ...]]:
        """The step around a training sample's augmentation (None: plain augmentation) and the
        folders it reads beyond the training split's.

        Args:
            root: the dataset root (``data.root``), for settings relative to it.
        """
        return None, ()

    def training_forward(self, net: nn.Module, image: Tensor, batch: Mapping[str, Tensor]) -> Any:
        """The network's training forward on ``image`` (the batch's image, ready for the network)."""
        return net(image)

    def describe(self) -> dict[str, Any]:
        """``{"mode": name, **settings}`` as plain values (checkpoints load with weights_only=True)."""
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {"mode": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}}


@dataclass(frozen=True)
class PPT(PrivacyMode):
    """Privacy-preserving training (the paper's setting): face-blurred images only."""


@dataclass(frozen=True)
class NoPrivacy(PrivacyMode):
    """No protection: the non-anonymized images of datasets that have them (P3M-10k has none)."""

    name: ClassVar[str] = "none"
    reads: ClassVar[TrainingReads] = ORIGINAL_READS


@dataclass(frozen=True)
class Obfuscate(PrivacyMode):
    """Non-anonymized images, face obfuscated on the fly inside the face mask minus the transition band.

    Attributes:
        method: ``blur`` (Gaussian), ``mosaic`` (pixelation) or ``zero`` (black).
        blur_sigma: blur: Gaussian sigma as a fraction of the face size.
        mosaic_block: mosaic: block side as a fraction of the face size.
        band_kernel: transition band kernel in px; None: 25 px at a 1080 px short side, scaled.
        opaque_alpha: alpha from which a pixel is definite foreground when making the band.
    """

    name: ClassVar[str] = "obfuscate"
    reads: ClassVar[TrainingReads] = dataclasses.replace(
        ORIGINAL_READS, mode="obfuscate", needs_facemask=True
    )

    method: str = "blur"
    blur_sigma: float = 0.25
    mosaic_block: float = 0.125
    band_kernel: int | None = None
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA

    def sample_hook(self, root: str | Path | None) -> tuple[ObfuscateHook, tuple[Path, ...]]:
        """Obfuscate the original image (and its fg) before the augmentation."""
        settings: dict[str, Any] = {
            "method": self.method,
            "blur_sigma": self.blur_sigma,
            "mosaic_block": self.mosaic_block,
        }
        try:
            obfuscator = FaceObfuscator(**settings, opaque_alpha=self.opaque_alpha)
        except (TypeError, ValueError) as err:
            raise ValueError(f"privacy=obfuscate: {err}") from None
        return ObfuscateHook(obfuscator, self.band_kernel), ()


@dataclass(frozen=True)
class CopyPaste(PrivacyMode):
    """P3M-CP: a public face pasted over the blurred face, in pixels (ICP) or encoder features (FCP).

    Attributes:
        level: ``image`` (ICP) or ``feature`` (FCP).
        prob: probability that a training sample gets a pasted face.
        source_dir: the public faces (CelebAMask-HQ, or images/ + masks/); None: ``<data.root>/public_faces``.
        stage: FCP: encoder stages before the paste (1 .. the backbone's ``num_stages``).
        flip_prob, rotation, scale, colour: the source face's random changes (:class:`FaceAugment`).
        band_kernel: transition band kernel in px; None: scaled to the sample.
        opaque_alpha: alpha from which a pixel is definite foreground when making the band.
    """

    name: ClassVar[str] = "cp"
    reads: ClassVar[TrainingReads] = dataclasses.replace(BLURRED_READS, mode="cp", needs_facemask=True)

    level: str = "image"
    prob: float = 0.5
    source_dir: str | None = None
    stage: int = 1
    flip_prob: float = 0.5
    rotation: float = 15.0
    scale: Sequence[float] = (1.0, 1.2)
    colour: float = 0.2
    band_kernel: int | None = None
    opaque_alpha: int = DEFAULT_OPAQUE_ALPHA

    def __post_init__(self) -> None:
        if self.level not in CP_LEVELS:
            raise ValueError(f"privacy.level={self.level!r} is unknown; choose image (ICP) or feature (FCP)")
        if isinstance(self.stage, bool) or not isinstance(self.stage, int) or self.stage < 1:
            raise ValueError(
                f"privacy.stage must be an integer >= 1 (encoder stages before the paste), got {self.stage!r}"
            )
        object.__setattr__(self, "scale", tuple(self.scale))  # hashable, and plain in describe()

    def sample_hook(self, root: str | Path | None) -> tuple[CopyPasteHook, tuple[Path, ...]]:
        """Paste a public face before the augmentation (ICP), or prepare the FCP inputs."""
        source_dir: str | Path | None = self.source_dir
        if source_dir is None:
            if root is None:
                raise ValueError(
                    "privacy.source_dir is null and data.root is not set: set privacy.source_dir"
                )
            source_dir = Path(root) / PUBLIC_FACES_DIR
        faces = PublicFaces(source_dir)
        augment = FaceAugment(
            flip_prob=self.flip_prob,
            rotation=self.rotation,
            scale=cast(tuple[float, float], self.scale),  # a tuple since __post_init__; FaceAugment checks it
            colour=self.colour,
        )
        hook = CopyPasteHook(
            faces,
            level=self.level,
            prob=self.prob,
            augment=augment,
            band_kernel=self.band_kernel,
            opaque_alpha=int(self.opaque_alpha),
        )
        return hook, faces.read_dirs

    def training_forward(self, net: nn.Module, image: Tensor, batch: Mapping[str, Tensor]) -> Any:
        """FCP: the network pastes the source's features after ``stage`` stages; ICP: a plain forward."""
        if self.level == "image":
            return net(image)
        for key in ("cp_source", "cp_mask"):
            if key not in batch:
                raise KeyError(f"privacy=cp level=feature needs batch[{key!r}] (keys: {sorted(batch)})")
        paste = cast(Any, net).forward_feature_paste  # P3MNet's; a network without it fails here, naming it
        return paste(image, batch["cp_source"], batch["cp_mask"], self.stage)
