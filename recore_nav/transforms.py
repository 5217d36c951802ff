"""A transform tree from /tf and /tf_static, for goals given in any frame (RViz sends `map`).

The subset of tf2's `BufferCore` the navigation node needs, in plain Python (tf2_ros has no PyPI
wheel and its buffer is a C extension): each frame has one parent; dynamic transforms are kept for
`cache_time` seconds and interpolated (linear translation, slerp rotation) at the asked time;
static ones hold at every time. `lookup(target, source, t)` chains through the common ancestor as
tf2 does; t = 0 means the latest time every dynamic link in the chain has. Asking for a time
outside a link's history is an error (tf2's ExtrapolationException), never a guess.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from recore_nav.geometry import yaw_from_quaternion


class TransformError(LookupError):
    """A transform that cannot be looked up; the message says why in one line."""


@dataclass(frozen=True)
class Transform:
    """parent_T_child: a point in child coordinates p maps to rotation * p + translation."""

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)   # x, y, z, w

    def __mul__(self, other: Transform) -> Transform:
        """self * other: other's child expressed in self's parent."""
        moved = self.apply(other.translation)
        return Transform(tuple(moved), _quat_multiply(self.rotation, other.rotation))

    def inverse(self) -> Transform:
        x, y, z, w = self.rotation
        conjugate = (-x, -y, -z, w)
        moved = _rotate(conjugate, self.translation)
        return Transform(tuple(-v for v in moved), conjugate)

    def apply(self, point: tuple[float, float, float]) -> tuple[float, float, float]:
        rotated = _rotate(self.rotation, point)
        return tuple(float(r + t) for r, t in zip(rotated, self.translation, strict=True))

    @property
    def yaw(self) -> float:
        return yaw_from_quaternion(*self.rotation)


def _quat_multiply(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def _rotate(q: tuple[float, ...], v: tuple[float, ...]) -> np.ndarray:
    u, w = np.asarray(q[:3], dtype=float), float(q[3])
    v = np.asarray(v, dtype=float)
    return v + 2.0 * w * np.cross(u, v) + 2.0 * np.cross(u, np.cross(u, v))


def _normalised(q: tuple[float, ...]) -> tuple[float, float, float, float]:
    norm = math.sqrt(sum(c * c for c in q))
    if not math.isfinite(norm) or norm < 1e-6:
        raise TransformError(f"rotation {tuple(q)} is not a quaternion")
    return tuple(c / norm for c in q)


def interpolate(a: Transform, b: Transform, ratio: float) -> Transform:
    """Linear in translation, spherical in rotation; ratio 0 gives a, 1 gives b."""
    translation = tuple(ta + (tb - ta) * ratio for ta, tb in zip(a.translation, b.translation, strict=True))
    qa, qb = np.asarray(a.rotation), np.asarray(b.rotation)
    dot = float(qa @ qb)
    if dot < 0.0:   # the shorter way round
        qb, dot = -qb, -dot
    if dot > 0.9995:
        q = qa + (qb - qa) * ratio
    else:
        angle = math.acos(dot)
        q = (math.sin((1.0 - ratio) * angle) * qa + math.sin(ratio * angle) * qb) / math.sin(angle)
    return Transform(translation, _normalised(tuple(q)))


@dataclass
class _Link:
    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)

    def at(self, stamp: float, child: str) -> Transform:
        if self.static:
            return self.transforms[-1]
        if stamp == 0.0:
            return self.transforms[-1]
        first, last = self.stamps[0], self.stamps[-1]
        if stamp < first - 1e-9 or stamp > last + 1e-9:
            when = "future" if stamp > last else "past"
            raise TransformError(f"{self.parent} -> {child} at {stamp:.3f} s would extrapolate into the {when} "
                                 f"(known from {first:.3f} to {last:.3f} s)")
        i = bisect.bisect_left(self.stamps, stamp)
        if i < len(self.stamps) and abs(self.stamps[i] - stamp) <= 1e-9:
            return self.transforms[i]
        t0, t1 = self.stamps[i - 1], self.stamps[i]
        return interpolate(self.transforms[i - 1], self.transforms[i], (stamp - t0) / (t1 - t0))


class TransformBuffer:
    """parent -> child transforms over time; see the module doc for the rules."""

    def __init__(self, cache_time: float = 10.0) -> None:
        self.cache_time = cache_time
        self._links: dict[str, _Link] = {}

    def set_transform(self, parent: str, child: str, stamp: float, transform: Transform, static: bool) -> None:
        """Add one transform; raise TransformError (nothing stored) if it is malformed."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise TransformError(f"transform {parent!r} -> {child!r} needs two different frame ids")
        if not all(math.isfinite(v) for v in transform.translation):
            raise TransformError(f"{parent} -> {child} translation is not finite")
        transform = Transform(tuple(float(v) for v in transform.translation), _normalised(transform.rotation))
        link = self._links.get(child)
        if link is None or link.parent != parent or link.static != static:
            link = self._links[child] = _Link(parent, static)   # a frame has one parent: the newest wins
        if static:
            link.stamps, link.transforms = [stamp], [transform]
            return
        if link.stamps and stamp < link.stamps[-1] - self.cache_time:
            return   # older than the cache keeps
        i = bisect.bisect_right(link.stamps, stamp)
        if i > 0 and abs(link.stamps[i - 1] - stamp) <= 1e-9:
            link.transforms[i - 1] = transform
        else:
            link.stamps.insert(i, stamp)
            link.transforms.insert(i, transform)
        horizon = link.stamps[-1] - self.cache_time
        drop = bisect.bisect_left(link.stamps, horizon)
        if drop > 0 and drop < len(link.stamps):
            del link.stamps[:drop], link.transforms[:drop]

    def frames(self) -> set[str]:
        return set(self._links) | {link.parent for link in self._links.values()}

    def _chain(self, frame: str) -> list[str]:
        """frame, its parent, ..., the root."""
        chain = [frame]
        while chain[-1] in self._links:
            chain.append(self._links[chain[-1]].parent)
            if len(chain) > 100:
                raise TransformError(f"the transform tree has a loop through {frame!r}")
        return chain

    def _latest_common_time(self, frames: list[str]) -> float:
        stamps = [self._links[f].stamps[-1] for f in frames if not self._links[f].static]
        return min(stamps) if stamps else 0.0

    def lookup(self, target: str, source: str, stamp: float = 0.0) -> Transform:
        """target_T_source at `stamp` (seconds; 0: the latest time the whole chain has)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return Transform()
        known = self.frames()
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"frame {frame!r} is not in the transform tree "
                                     f"(known: {', '.join(sorted(known)) or 'none'})")
        up_source, up_target = self._chain(source), self._chain(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise TransformError(f"frames {source!r} and {target!r} are not connected "
                                 f"(roots {up_source[-1]!r} and {up_target[-1]!r})")
        source_links = up_source[:up_source.index(common)]
        target_links = up_target[:up_target.index(common)]
        if stamp == 0.0:
            stamp = self._latest_common_time(source_links + target_links)
        common_T_source = Transform()
        for frame in reversed(source_links):   # from the common ancestor down to source
            common_T_source = common_T_source * self._links[frame].at(stamp, frame)
        common_T_target = Transform()
        for frame in reversed(target_links):
            common_T_target = common_T_target * self._links[frame].at(stamp, frame)
        return common_T_target.inverse() * common_T_source
