"""Appearance splits of the embedded simulator: train and ood disjoint by construction."""

import dataclasses

import numpy as np
import pytest

from recore_nav.sim.appearance import (SPLIT_RANGES, SURFACES, Sim2RealShift, check_splits_disjoint,
                                       sample_appearance, sample_episode_sensor, shift_camera)


def inside(value, intervals):
    return any(lo <= value < hi for lo, hi in intervals)


def test_split_ranges_are_disjoint():
    check_splits_disjoint()
    overlapping = dataclasses.replace(SPLIT_RANGES["ood"], hue_intervals=((0.01, 0.02),))
    with pytest.raises(AssertionError):
        check_splits_disjoint(SPLIT_RANGES["train"], overlapping)
    shared_texture = dataclasses.replace(SPLIT_RANGES["ood"], texture_kinds=("checker",))
    with pytest.raises(AssertionError):
        check_splits_disjoint(SPLIT_RANGES["train"], shared_texture)


@pytest.mark.parametrize("split,other", [("train", "ood"), ("ood", "train"), ("sim2real", "ood")])
def test_sampled_appearances_stay_in_their_split(split, other):
    own, foreign = SPLIT_RANGES[split], SPLIT_RANGES[other]
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(200):
        a = sample_appearance(split, rng)
        assert set(a.surfaces) == set(SURFACES)
        for surface in a.surfaces.values():
            kinds.add(surface.kind)
            for hsv in (surface.hsv1, surface.hsv2):
                assert inside(hsv[0], own.hue_intervals) and not inside(hsv[0], foreign.hue_intervals)
        assert inside(a.light_diffuse, own.light_diffuse) and not inside(a.light_diffuse, foreign.light_diffuse)
        assert inside(a.light_ambient, own.light_ambient) and not inside(a.light_ambient, foreign.light_ambient)
    assert kinds == set(own.texture_kinds)
    assert not kinds & set(foreign.texture_kinds)


def test_unknown_split_raises():
    with pytest.raises(ValueError):
        sample_appearance("night", np.random.default_rng(0))


def test_sensor_shift_is_reproducible_and_changes_the_image():
    shift = Sim2RealShift()
    rgb = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    depth = np.full((32, 32, 1), 2.0, np.float32)
    sensor = sample_episode_sensor(shift, 32, np.random.default_rng(2))
    assert shift.fovy_deg[0] <= sensor.fovy_deg <= shift.fovy_deg[1]
    a = shift_camera(rgb, depth, shift, sensor, np.random.default_rng(3))
    b = shift_camera(rgb, depth, shift, sensor, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == np.uint8 and a[1].dtype == np.float32
    assert np.abs(a[0].astype(int) - rgb.astype(int)).mean() > 5
    assert abs(float(a[1].mean()) - 2.0) < 0.05 and a[1].std() > 0.0
