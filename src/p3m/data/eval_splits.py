"""The evaluation splits of a data config (``data.eval_splits``): what each split reads and how it is named.

An evaluation split may obfuscate its faces on the fly (``obfuscate: {method: zero}``): the extra
P3M-500-P splits with the blurred faces re-obfuscated as ``zero`` or ``mosaic`` read the same
folders as P3M-500-P. :mod:`p3m.data.layout` finds each split's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The prefix of the split that the usual gap is measured against (P3M-500-P, face-blurred).
BASE_PREFIX = "p"


def default_gap_to(prefix: str) -> str | None:
    """The base a split is compared with when its config does not say: ``np`` -> ``p``, others none."""
    return BASE_PREFIX if prefix == "np" else None


# An evaluation split's face obfuscation: (image, facemask, **band options) -> image, e.g. a
# p3m.privacy.obfuscate.FaceObfuscator built from the split's `obfuscate` keys.
Obfuscator = Callable[..., np.ndarray]


@dataclass(frozen=True)
class EvalSplit:
    """One evaluation split of the data config.

    Attributes:
        name: shown in logs and result tables, e.g. ``P3M-500-P``.
        prefix: the split's short name in metric keys, e.g. ``p``: logged as ``<stage>/p/<metric>``
            (``val/p/sad`` in validation, ``test/p/sad`` in test); no ``/`` (the stage is prepended).
        image_dir, mask_dir: folders relative to ``<root>/validation`` (or ``<root>``).
        trimap_dir: trimaps, or ``None`` for splits without (trimap metrics are then skipped).
        facemask_dir: face masks; optional: a missing folder just means no ``facemask`` key.
        anonymized: the faces in its images are obfuscated; only such splits are uploaded as images
            to hosted loggers unless the user opts in (``callbacks.wandb_images.log_unblurred``).
        gap_to: prefix of the split this one is compared with: ``np`` -> ``p`` logs
            ``<stage>/np_minus_p/<metric>``; the default is ``p`` for the split ``np``, none for others.
        obfuscate: obfuscate every image's face on the fly (inside the face mask minus the trimap's
            unknown region, or the alpha's transition band without trimaps), e.g.
            ``FaceObfuscator(method="zero")``; needs face masks. From the config: a mapping of
            :class:`~p3m.privacy.obfuscate.FaceObfuscator` keys (``{method: mosaic}``).
    """

    name: str
    prefix: str
    image_dir: str
    mask_dir: str
    trimap_dir: str | None = None
    facemask_dir: str | None = None
    anonymized: bool = False
    obfuscate: Obfuscator | None = None
    gap_to: str | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], index: int = 0, obfuscator: Callable[..., Obfuscator] | None = None
    ) -> EvalSplit:
        """Build from one entry of ``data.eval_splits``, naming the entry in errors; ``obfuscator``
        builds the ``obfuscate`` entry's callable from its keys."""
        if isinstance(config, EvalSplit):
            return config
        if not isinstance(config, Mapping):
            raise ValueError(f"data.eval_splits[{index}] must be a mapping, got {config!r}")
        required = ("name", "prefix", "image_dir", "mask_dir")
        missing = [key for key in required if not config.get(key)]
        optional = ("trimap_dir", "facemask_dir", "anonymized", "obfuscate", "gap_to")
        unknown = sorted(set(config) - {*required, *optional})
        if missing or unknown:
            raise ValueError(
                f"data.eval_splits[{index}] ({dict(config)}): "
                + (f"missing {', '.join(missing)}; " if missing else "")
                + (f"unknown keys {', '.join(unknown)}; " if unknown else "")
                + "each split needs name, prefix, image_dir, mask_dir and may set trimap_dir, facemask_dir, "
                "anonymized, obfuscate, gap_to"
            )
        prefix = str(config["prefix"])
        if "/" in prefix:
            raise ValueError(
                f"data.eval_splits[{index}] ({config['name']}): prefix={prefix!r} holds a '/'; the prefix is "
                f"the split's short name (e.g. prefix: {prefix.rsplit('/', 1)[-1]}) and the stage is "
                "prepended (val/p/sad in validation, test/p/sad in test)"
            )
        obfuscate = _eval_obfuscator(config.get("obfuscate"), index, obfuscator)
        if obfuscate is not None and not config.get("facemask_dir"):
            raise ValueError(
                f"data.eval_splits[{index}] ({config['name']}) sets obfuscate but no facemask_dir: "
                "faces are obfuscated inside the face masks; set facemask_dir"
            )
        return cls(
            name=str(config["name"]),
            prefix=prefix,
            image_dir=str(config["image_dir"]),
            mask_dir=str(config["mask_dir"]),
            trimap_dir=str(config["trimap_dir"]) if config.get("trimap_dir") else None,
            facemask_dir=str(config["facemask_dir"]) if config.get("facemask_dir") else None,
            anonymized=bool(config.get("anonymized", False)),
            obfuscate=obfuscate,
            gap_to=str(config["gap_to"]) if config.get("gap_to") else default_gap_to(prefix),
        )


def _eval_obfuscator(
    config: Any, index: int, obfuscator: Callable[..., Obfuscator] | None
) -> Obfuscator | None:
    """The ``obfuscate`` entry of an evaluation split: null, or a mapping of the obfuscator's keys."""
    if config is None or callable(config):
        return config
    if not isinstance(config, Mapping):
        raise ValueError(
            f"data.eval_splits[{index}].obfuscate must be a mapping such as {{method: zero}}, got {config!r}"
        )
    if obfuscator is None:
        raise ValueError(
            f"data.eval_splits[{index}] sets obfuscate, but the data module has no obfuscator "
            "(data.obfuscator: {_target_: p3m.privacy.obfuscate.FaceObfuscator, _partial_: true})"
        )
    try:
        return obfuscator(**dict(config))
    except (TypeError, ValueError) as err:
        raise ValueError(f"data.eval_splits[{index}].obfuscate: {err}") from None


def parse_eval_splits(
    configs: Iterable[Mapping[str, Any]] | None, obfuscator: Callable[..., Obfuscator] | None = None
) -> list[EvalSplit]:
    """Parse ``data.eval_splits``; names and prefixes must be unique. ``obfuscator`` builds the
    callables of the splits that obfuscate faces (from their ``obfuscate`` keys)."""
    splits = [EvalSplit.from_config(config, i, obfuscator) for i, config in enumerate(configs or [])]
    for attribute in ("name", "prefix"):
        values = [getattr(split, attribute) for split in splits]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(
                f"data.eval_splits: duplicate {attribute} {duplicates}; each split needs its own"
            )
    return splits
