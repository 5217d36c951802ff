"""Appearance splits: what surfaces and lights look like, and the sim-to-real sensor shift.

Splits (disjoint by construction; `check_splits_disjoint` asserts it at import):

- `train`: surfaces use MuJoCo's `checker` and `gradient` texture builtins; every colour's hue
  lies in [60k, 60k + 25) degrees (k = 0..5); directional light diffuse in [0.45, 0.70], ambient
  in [0.20, 0.30].
- `ood`: surfaces use `noise` (flat + random marks), `grid` (flat + edge marks) and `cross`
  textures; hues in [60k + 30, 60k + 55) degrees; light diffuse in [0.20, 0.40] or [0.80, 1.00],
  ambient in [0.05, 0.15] or [0.35, 0.45]. No texture kind, hue or light level of `train` occurs.
- `sim2real`: the `train` appearance seen through a shifted sensor and robot (`Sim2RealShift`):
  Gaussian pixel noise, blur, an exposure gain per episode, a different vertical field of view
  per episode, depth noise, multiplicative actuation noise and a one-step actuation delay.

Saturation and brightness ranges are shared by all splits; hue, texture kind and light level are
what separates them.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import cv2
import numpy as np

from recore_nav.task import SPLITS

SURFACES = ("floor", "wall", "obstacle_a", "obstacle_b", "ceiling")

Interval = tuple[float, float]  # [lo, hi)


@dataclass(frozen=True)
class SplitRanges:
    """The appearance distribution of one split. Every range is a union of half-open intervals."""

    texture_kinds: tuple[str, ...]
    hue_intervals: tuple[Interval, ...]        # hue in [0, 1)
    light_diffuse: tuple[Interval, ...]
    light_ambient: tuple[Interval, ...]


def _bands(offset_deg: float, width_deg: float) -> tuple[Interval, ...]:
    return tuple(((60.0 * k + offset_deg) / 360.0, (60.0 * k + offset_deg + width_deg) / 360.0) for k in range(6))


SPLIT_RANGES: dict[str, SplitRanges] = {
    "train": SplitRanges(
        texture_kinds=("checker", "gradient"),
        hue_intervals=_bands(0.0, 25.0),
        light_diffuse=((0.45, 0.70),),
        light_ambient=((0.20, 0.30),),
    ),
    "ood": SplitRanges(
        texture_kinds=("noise", "grid", "cross"),
        hue_intervals=_bands(30.0, 25.0),
        light_diffuse=((0.20, 0.40), (0.80, 1.00)),
        light_ambient=((0.05, 0.15), (0.35, 0.45)),
    ),
}
SPLIT_RANGES["sim2real"] = SPLIT_RANGES["train"]
SATURATION: Interval = (0.35, 0.75)
BRIGHTNESS: Interval = (0.35, 0.90)
CEILING_SATURATION: Interval = (0.05, 0.20)  # ceilings are pale in every split


def _overlap(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> bool:
    return any(lo_a < hi_b and lo_b < hi_a for lo_a, hi_a in a for lo_b, hi_b in b)


def check_splits_disjoint(train: SplitRanges | None = None, ood: SplitRanges | None = None) -> None:
    """Raise AssertionError if `train` and `ood` (default: the module's) share a texture kind,
    a hue or a light level."""
    train, ood = train or SPLIT_RANGES["train"], ood or SPLIT_RANGES["ood"]
    assert not set(train.texture_kinds) & set(ood.texture_kinds), "texture kinds overlap"
    assert not _overlap(train.hue_intervals, ood.hue_intervals), "hue intervals overlap"
    assert not _overlap(train.light_diffuse, ood.light_diffuse), "light diffuse intervals overlap"
    assert not _overlap(train.light_ambient, ood.light_ambient), "light ambient intervals overlap"


check_splits_disjoint()


@dataclass(frozen=True)
class Surface:
    """One material: a procedural MuJoCo texture of `kind` in two colours (HSV, each in [0, 1])."""

    kind: str
    hsv1: tuple[float, float, float]
    hsv2: tuple[float, float, float]
    repeat: float                      # texture repeats per metre

    @property
    def rgb1(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(*self.hsv1)

    @property
    def rgb2(self) -> tuple[float, float, float]:
        return colorsys.hsv_to_rgb(*self.hsv2)


@dataclass(frozen=True)
class Appearance:
    """Everything that decides how a scene looks, drawn from one split."""

    split: str
    surfaces: dict[str, Surface]
    light_diffuse: float
    light_ambient: float
    light_direction: tuple[float, float, float]


def _uniform_in(intervals: tuple[Interval, ...], rng: np.random.Generator) -> float:
    widths = np.array([hi - lo for lo, hi in intervals])
    k = int(rng.choice(len(intervals), p=widths / widths.sum()))
    lo, hi = intervals[k]
    return float(rng.uniform(lo, hi))


def sample_appearance(split: str, rng: np.random.Generator) -> Appearance:
    """Draw textures, colours and lighting for one scene from a split's ranges."""
    if split not in SPLIT_RANGES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    ranges = SPLIT_RANGES[split]
    surfaces = {}
    for name in SURFACES:
        saturation = CEILING_SATURATION if name == "ceiling" else SATURATION
        hsv1 = (_uniform_in(ranges.hue_intervals, rng), float(rng.uniform(*saturation)), float(rng.uniform(*BRIGHTNESS)))
        hsv2 = (_uniform_in(ranges.hue_intervals, rng), float(rng.uniform(*saturation)), float(rng.uniform(*BRIGHTNESS)))
        kind = ranges.texture_kinds[int(rng.integers(len(ranges.texture_kinds)))]
        surfaces[name] = Surface(kind, hsv1, hsv2, repeat=float(rng.uniform(0.5, 2.0)))
    # Oblique light (elevation 30-60 degrees), so walls are lit and not only the floor.
    azimuth, elevation = rng.uniform(-np.pi, np.pi), rng.uniform(np.pi / 6, np.pi / 3)
    direction = (math.cos(azimuth) * math.cos(elevation), math.sin(azimuth) * math.cos(elevation), -math.sin(elevation))
    return Appearance(
        split=split,
        surfaces=surfaces,
        light_diffuse=_uniform_in(ranges.light_diffuse, rng),
        light_ambient=_uniform_in(ranges.light_ambient, rng),
        light_direction=tuple(float(v) for v in direction),
    )


# --------------------------------------------------------------------------------------------
# Sim-to-real stand-in


@dataclass(frozen=True)
class Sim2RealShift:
    """The sensor and actuation gap of the `sim2real` split. Ranges are drawn once per episode."""

    rgb_noise_std: float = 6.0                  # uint8 grey levels, per pixel and channel
    blur_sigma: Interval = (0.5, 1.0)           # Gaussian blur, pixels at 64x64 (scaled with size)
    exposure_gain: Interval = (0.6, 1.5)        # multiplies rgb
    fovy_deg: Interval = (70.0, 80.0)           # nominal camera: 90 degrees
    depth_noise_std: float = 0.02               # relative to depth
    action_noise_std: float = 0.1               # relative, per component and step
    action_delay_steps: int = 1                 # commands act this many control steps late


@dataclass(frozen=True)
class EpisodeSensor:
    """The shift's values drawn for one episode."""

    blur_sigma: float
    exposure_gain: float
    fovy_deg: float


def sample_episode_sensor(shift: Sim2RealShift, image_size: int, rng: np.random.Generator) -> EpisodeSensor:
    return EpisodeSensor(
        blur_sigma=float(rng.uniform(*shift.blur_sigma)) * image_size / 64.0,
        exposure_gain=float(rng.uniform(*shift.exposure_gain)),
        fovy_deg=float(rng.uniform(*shift.fovy_deg)),
    )


def shift_camera(rgb: np.ndarray, depth: np.ndarray, shift: Sim2RealShift, sensor: EpisodeSensor,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """rgb (H, W, 3) uint8 and depth (H, W, 1) float32 as the shifted camera would see them."""
    image = cv2.GaussianBlur(rgb, (0, 0), sensor.blur_sigma).astype(np.float32)
    image = image * sensor.exposure_gain + rng.normal(0.0, shift.rgb_noise_std, size=image.shape).astype(np.float32)
    noisy_depth = depth * (1.0 + rng.normal(0.0, shift.depth_noise_std, size=depth.shape)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), np.maximum(noisy_depth, 0.0).astype(np.float32)
