"""Temporal stabilisers of per-frame mattes: less flicker from a model that sees one frame at a time.

P3M-Net mattes each frame on its own, so noise in its output changes from frame to frame (flicker).
A stabiliser takes the frames and their mattes in order and gives them back, smoothed; it is chosen
by ``video.stabilizer`` (docs/video.md measures each one on the video benchmark):

- ``none``: the mattes as predicted;
- ``ema``: an exponential blend with the previous output, only where the picture did not change
  (the blend weight falls to 0 where the grey level moved by ``motion_threshold`` or more), so a
  moving subject does not leave a trail;
- ``ofd``: MODNet's one-frame delay (Ke et al., AAAI 2022): where the mattes before and after a frame
  agree (within ``ofd_threshold``) and that frame's matte differs from both by more, it becomes their
  mean. Outputs lag one frame behind the inputs;
- ``flow_ema``: the previous output warped to the current frame with optical flow (OpenCV DIS on the
  grey frames), blended as ``ema`` does, with the weight falling where the warped previous frame does
  not match the current one (occlusions, flow errors).

Every stabiliser restarts at a scene cut, found by :class:`SceneCutDetector`: nothing is blended
across a cut. Each frame travels with an ``item`` of the caller's (its timestamp, its index), given
back with its stabilised matte.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np

from p3m.utils.errors import SettingError

#: Stabilisers by the name of ``video.stabilizer``, in registration order.
STABILIZERS: dict[str, type[Stabilizer]] = {}
THUMBNAIL_WIDTH = 64  # px: the cut detector compares frames this small (noise and grain average out)
FLOW_MAX_SIDE = 512  # px: optical flow is computed on frames shrunk to this, then scaled back


@dataclass(frozen=True)
class StabilizerSettings:
    """The ``video.*`` settings of the stabilisers (``conf/video/default.yaml``)."""

    stabilizer: str = "none"
    ema_weight: float = 0.5
    """For ``ema`` and ``flow_ema``, the previous output's share of the blend where nothing changed."""
    motion_threshold: float = 12.0
    """For ``ema`` and ``flow_ema``, the grey-level change (0..255) that marks a pixel as changed."""
    ofd_threshold: float = 0.1
    """For ``ofd``, MODNet's xi: the matte difference that counts as agreement or disagreement."""
    cut_threshold: float = 30.0
    """Mean grey-level change (0..255) between two frames' thumbnails that marks a scene cut."""

    @classmethod
    def from_config(cls, video: Mapping[str, Any] | None) -> StabilizerSettings:
        """The ``video`` node of a predict or eval config (other keys in it are ignored), checked.

        Raises:
            SettingError: a key of the wrong type or out of range, or an unknown stabiliser.
        """
        values = {key: (video or {})[key] for key in cls.__dataclass_fields__ if key in (video or {})}
        for key, value in values.items():
            expected = str if key == "stabilizer" else (int, float)
            if isinstance(value, bool) or not isinstance(value, expected):
                kind = "a name" if key == "stabilizer" else "a number"
                raise SettingError(f"video.{key}={value!r}: expected {kind}")
        return cls(**values)

    def __post_init__(self) -> None:
        if self.stabilizer not in STABILIZERS:
            raise SettingError(
                f"video.stabilizer={self.stabilizer!r}: expected one of {' | '.join(STABILIZERS)}"
            )
        for key in ("ema_weight", "ofd_threshold"):
            if not 0 <= getattr(self, key) <= 1:
                raise SettingError(f"video.{key}={getattr(self, key)}: expected a number in [0, 1]")
        for key in ("motion_threshold", "cut_threshold"):
            if not getattr(self, key) > 0:
                raise SettingError(f"video.{key}={getattr(self, key)}: expected a positive grey level")


def register_stabilizer(name: str) -> Callable[[type[Stabilizer]], type[Stabilizer]]:
    """Class decorator: make a :class:`Stabilizer` available as ``video.stabilizer=name``."""

    def register(cls: type[Stabilizer]) -> type[Stabilizer]:
        if STABILIZERS.get(name, cls) is not cls:
            raise ValueError(f"a stabiliser named {name!r} is already registered ({STABILIZERS[name]})")
        STABILIZERS[name] = cls
        cls.name = name
        return cls

    return register


def create_stabilizer(settings: StabilizerSettings) -> Stabilizer:
    """A fresh stabiliser for one video (they keep the previous frames)."""
    return STABILIZERS[settings.stabilizer](settings)


def grey(image: np.ndarray) -> np.ndarray:
    """An RGB(A) uint8 frame as float32 grey levels 0..255."""
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


class SceneCutDetector:
    """Says whether a frame starts a new shot: its thumbnail differs from the previous one's by more
    than ``threshold`` grey levels on average (the first frame is a cut)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._previous: np.ndarray | None = None

    def __call__(self, frame_grey: np.ndarray) -> bool:
        height, width = frame_grey.shape
        size = (THUMBNAIL_WIDTH, max(1, round(height * THUMBNAIL_WIDTH / width)))
        thumbnail = cv2.resize(frame_grey, size, interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, thumbnail
        return previous is None or float(np.abs(thumbnail - previous).mean()) > self.threshold


class Stabilizer:
    """Base class: ``push`` each frame and its matte in order, then ``flush`` at the end.

    Both return the ``(item, matte)`` pairs that are ready, in order; every pushed item comes back
    exactly once. Mattes are float32 ``(H, W)`` in [0, 1].
    """

    name: ClassVar[str]

    def __init__(self, settings: StabilizerSettings) -> None:
        self.settings = settings
        self._cuts = SceneCutDetector(settings.cut_threshold)

    def push(self, image: np.ndarray, alpha: np.ndarray, item: Any) -> list[tuple[Any, np.ndarray]]:
        """Take the next frame (``(H, W, 3)`` uint8 RGB), its matte and the caller's ``item``."""
        frame_grey = grey(image)
        return self._step(frame_grey, alpha.astype(np.float32, copy=False), item, self._cuts(frame_grey))

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        """The frames still held back (the one-frame delay's last frame)."""
        return []

    def _step(self, frame_grey: np.ndarray, alpha: np.ndarray, item: Any, cut: bool) -> list[Any]:
        raise NotImplementedError


@register_stabilizer("none")
class NoStabilizer(Stabilizer):
    """The mattes as the network predicted them."""

    def push(self, image: np.ndarray, alpha: np.ndarray, item: Any) -> list[tuple[Any, np.ndarray]]:
        return [(item, alpha)]  # no grey frame, no cut detection: nothing to restart

    def _step(self, frame_grey: np.ndarray, alpha: np.ndarray, item: Any, cut: bool) -> list[Any]:
        return [(item, alpha)]


class _Blend(Stabilizer):
    """``ema`` and ``flow_ema``: out = w * previous + (1 - w) * alpha, w = ema_weight * agreement."""

    def __init__(self, settings: StabilizerSettings) -> None:
        super().__init__(settings)
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # (grey frame, output matte)

    def _step(self, frame_grey: np.ndarray, alpha: np.ndarray, item: Any, cut: bool) -> list[Any]:
        if cut or self._previous is None:
            out = alpha
        else:
            previous_grey, previous_out = self._aligned(frame_grey, *self._previous)
            change = cv2.GaussianBlur(np.abs(frame_grey - previous_grey), (5, 5), 0)
            agreement = np.clip(1.0 - change / self.settings.motion_threshold, 0.0, 1.0)
            weight = self.settings.ema_weight * agreement
            out = weight * previous_out + (1.0 - weight) * alpha
        self._previous = (frame_grey, out)
        return [(item, out)]

    def _aligned(
        self, frame_grey: np.ndarray, previous_grey: np.ndarray, previous_out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The previous frame and output as they line up with the current frame."""
        return previous_grey, previous_out


@register_stabilizer("ema")
class MotionGatedEMA(_Blend):
    """Exponential blend with the previous output where the picture did not change."""


@register_stabilizer("flow_ema")
class FlowWarpedEMA(_Blend):
    """Exponential blend with the previous output warped along the optical flow."""

    def __init__(self, settings: StabilizerSettings) -> None:
        super().__init__(settings)
        preset = cv2.DISOPTICAL_FLOW_PRESET_FAST
        self._flow = cv2.DISOpticalFlow_create(preset)  # type: ignore[attr-defined]  # in cv2, not its stubs

    def _aligned(
        self, frame_grey: np.ndarray, previous_grey: np.ndarray, previous_out: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        height, width = frame_grey.shape
        scale = min(1.0, FLOW_MAX_SIDE / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (frame_grey, previous_grey)]
        small = [g.astype(np.uint8) for g in small]
        # backward flow: where each pixel of the current frame was in the previous one
        flow = self._flow.calc(small[0], small[1], None)
        if scale < 1.0:
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) / scale
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
        warp = [
            cv2.remap(x, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for x in (previous_grey, previous_out)
        ]
        return warp[0], warp[1]


@register_stabilizer("ofd")
class OneFrameDelay(Stabilizer):
    """MODNet's one-frame delay: a matte that disagrees with two agreeing neighbours becomes their mean.

    A frame is given back when its successor arrives (or at a cut, or at ``flush``); the
    neighbours are the network's mattes, as in MODNet. The first and last frame of a shot have one
    neighbour only and are given back as predicted.
    """

    def __init__(self, settings: StabilizerSettings) -> None:
        super().__init__(settings)
        self._before: np.ndarray | None = None  # the predicted matte of the frame before the pending one
        self._pending: tuple[Any, np.ndarray] | None = None  # the frame waiting for its successor

    def _step(self, frame_grey: np.ndarray, alpha: np.ndarray, item: Any, cut: bool) -> list[Any]:
        ready = []
        if self._pending is not None:
            pending_item, middle = self._pending
            if cut or self._before is None:
                ready.append((pending_item, middle))
            else:
                xi, before = self.settings.ofd_threshold, self._before
                flicker = (np.abs(before - alpha) <= xi) & (np.abs(middle - before) > xi)
                flicker &= np.abs(middle - alpha) > xi
                ready.append((pending_item, np.where(flicker, (before + alpha) / 2, middle)))
            self._before = None if cut else middle
        self._pending = (item, alpha)
        return ready

    def flush(self) -> list[tuple[Any, np.ndarray]]:
        pending, self._pending, self._before = self._pending, None, None
        return [] if pending is None else [pending]
