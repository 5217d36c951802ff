"""The transform buffer against scipy's rotations: chains, interpolation, static links, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recore_nav.geometry import quaternion_from_yaw
from recore_nav.transforms import Transform, TransformBuffer, TransformError


def random_transform(rng: np.random.Generator) -> Transform:
    return Transform(tuple(rng.normal(size=3)), tuple(Rotation.random(random_state=rng).as_quat()))


def as_matrix(t: Transform) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_quat(t.rotation).as_matrix()
    m[:3, 3] = t.translation
    return m


def test_compose_and_inverse_match_matrices() -> None:
    rng = np.random.default_rng(0)
    a, b = random_transform(rng), random_transform(rng)
    np.testing.assert_allclose(as_matrix(a * b), as_matrix(a) @ as_matrix(b), atol=1e-9)
    np.testing.assert_allclose(as_matrix(a.inverse()), np.linalg.inv(as_matrix(a)), atol=1e-9)


def test_lookup_through_common_ancestor() -> None:
    rng = np.random.default_rng(1)
    map_odom, odom_base, base_cam, map_marker = (random_transform(rng) for _ in range(4))
    buffer = TransformBuffer()
    buffer.set_transform("map", "odom", 1.0, map_odom, static=False)
    buffer.set_transform("odom", "base_link", 1.0, odom_base, static=False)
    buffer.set_transform("base_link", "camera_link", 0.0, base_cam, static=True)
    buffer.set_transform("map", "marker", 0.0, map_marker, static=True)
    expected = np.linalg.inv(as_matrix(map_odom) @ as_matrix(odom_base) @ as_matrix(base_cam)) @ as_matrix(map_marker)
    np.testing.assert_allclose(as_matrix(buffer.lookup("camera_link", "marker", 1.0)), expected, atol=1e-9)
    # Time 0: the latest time every dynamic link has.
    np.testing.assert_allclose(as_matrix(buffer.lookup("camera_link", "marker")), expected, atol=1e-9)


def test_interpolates_between_stamps() -> None:
    buffer = TransformBuffer()
    buffer.set_transform("map", "odom", 1.0, Transform((0.0, 0.0, 0.0), quaternion_from_yaw(0.0)), static=False)
    buffer.set_transform("map", "odom", 3.0, Transform((2.0, 0.0, 0.0), quaternion_from_yaw(1.0)), static=False)
    t = buffer.lookup("map", "odom", 1.5)
    assert t.translation[0] == pytest.approx(0.5)
    assert t.yaw == pytest.approx(0.25)


def test_extrapolation_and_unknown_frames_are_errors() -> None:
    buffer = TransformBuffer()
    buffer.set_transform("map", "odom", 1.0, Transform(), static=False)
    buffer.set_transform("map", "odom", 2.0, Transform(), static=False)
    with pytest.raises(TransformError, match="extrapolate into the future"):
        buffer.lookup("map", "odom", 2.5)
    with pytest.raises(TransformError, match="extrapolate into the past"):
        buffer.lookup("map", "odom", 0.5)
    with pytest.raises(TransformError, match="'earth' is not in the transform tree"):
        buffer.lookup("earth", "odom", 1.0)
    buffer.set_transform("world", "robot2", 1.0, Transform(), static=True)
    with pytest.raises(TransformError, match="not connected"):
        buffer.lookup("robot2", "odom", 1.0)
    with pytest.raises(TransformError, match="not a quaternion"):
        buffer.set_transform("map", "x", 1.0, Transform((0, 0, 0), (0, 0, 0, 0)), static=False)
    with pytest.raises(TransformError, match="not finite"):
        buffer.set_transform("map", "x", 1.0, Transform((math.nan, 0, 0)), static=False)


def test_cache_keeps_only_recent_history() -> None:
    buffer = TransformBuffer(cache_time=2.0)
    for stamp in range(10):
        buffer.set_transform("map", "odom", float(stamp), Transform((float(stamp), 0.0, 0.0)), static=False)
    assert buffer.lookup("map", "odom", 8.5).translation[0] == pytest.approx(8.5)
    with pytest.raises(TransformError, match="past"):
        buffer.lookup("map", "odom", 5.0)
