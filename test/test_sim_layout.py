"""Procedural layouts and geodesic distances of the embedded simulator (no rendering)."""

import math

import numpy as np
import pytest

from recore_nav.sim.layout import (Box, Layout, LayoutConfig, Rect, TraversabilityMap, enclosing_walls,
                                   generate_layout)

CONFIG = LayoutConfig()
RHO = CONFIG.inflation_radius   # clearance the robot's centre keeps from solids


def corridor() -> Layout:
    room = Rect(0.0, 0.0, 6.0, 1.2)
    return Layout(rooms=(room,), walls=tuple(enclosing_walls(room)))


def l_shape() -> Layout:
    """An L: a horizontal arm y in [0, 1] and a vertical arm x in [4, 5] up to y = 5."""
    t, h = 0.05, 2.4
    walls = (
        Box(2.5, 0.0, 2.5 + t, t, h),      # bottom
        Box(0.0, 0.5, t, 0.5 + t, h),      # left end
        Box(2.0, 1.0, 2.0 + t, t, h),      # top of the horizontal arm
        Box(4.0, 3.0, t, 2.0 + t, h),      # inner side of the vertical arm
        Box(5.0, 2.5, t, 2.5 + t, h),      # outer side
        Box(4.5, 5.0, 0.5 + t, t, h),      # top end
    )
    return Layout(rooms=(Rect(0.0, 0.0, 5.0, 1.0), Rect(4.0, 0.0, 5.0, 5.0)), walls=walls)


def around_corner(start, goal, corner, rho) -> float:
    """Euclidean shortest path from start to goal wrapping a disc of radius rho at corner
    (tangent, arc, tangent), for a path that turns left around the corner."""
    sc = (start[0] - corner[0], start[1] - corner[1])
    gc = (goal[0] - corner[0], goal[1] - corner[1])
    ds, dg = math.hypot(*sc), math.hypot(*gc)
    # angle swept counter-clockwise from C->S to C->G (the free side of this corner)
    sweep = (math.atan2(gc[1], gc[0]) - math.atan2(sc[1], sc[0])) % (2 * math.pi)
    arc = sweep - math.acos(rho / ds) - math.acos(rho / dg)
    return math.sqrt(ds ** 2 - rho ** 2) + math.sqrt(dg ** 2 - rho ** 2) + rho * arc


def test_straight_corridor_geodesic_is_the_straight_distance():
    grid = TraversabilityMap(corridor(), CONFIG)
    field = grid.geodesic_field(5.5, 0.6)
    assert field.distance_at(0.5, 0.6) == pytest.approx(5.0, abs=0.06)
    assert field.distance_at(3.0, 0.6) == pytest.approx(2.5, abs=0.06)
    # A point inside the wall is off the map: its distance goes through the nearest free cell.
    assert field.distance_at(3.0, 0.0) > field.distance_at(3.0, 0.6)


def test_l_shaped_geodesic_goes_around_the_corner():
    grid = TraversabilityMap(l_shape(), CONFIG)
    start, goal = (0.5, 0.5), (4.5, 4.5)
    field = grid.geodesic_field(*goal)
    # The solid L's convex corner is at (4.05, 0.95); the path wraps it at the robot's clearance.
    expected = around_corner(start, goal, (4.05, 0.95), RHO)
    assert expected > math.dist(start, goal) + 1.0
    assert field.distance_at(*start) == pytest.approx(expected, rel=0.03)
    path = field.path_from(*start)
    assert math.dist(path[-1], goal) < 0.05
    assert all(grid.is_reachable(x, y) for x, y in path)


def test_closed_wall_makes_the_other_room_unreachable():
    left, right = Rect(0.0, 0.0, 3.0, 3.0), Rect(3.0, 0.0, 6.0, 3.0)
    layout = Layout(rooms=(left, right), walls=tuple(enclosing_walls(left) + enclosing_walls(right)))
    grid = TraversabilityMap(layout, CONFIG)
    assert not grid.every_room_reachable()
    assert grid.is_reachable(1.5, 1.5) != grid.is_reachable(4.5, 1.5)


@pytest.mark.parametrize("seed", range(8))
def test_generated_layouts_connect_every_room(seed):
    layout, grid = generate_layout(CONFIG, np.random.default_rng(seed))
    assert CONFIG.num_rooms[0] <= len(layout.rooms) <= CONFIG.num_rooms[1]
    assert grid.every_room_reachable()
    for room in layout.rooms:
        assert CONFIG.room_size[0] - 1e-9 <= room.x1 - room.x0 <= CONFIG.room_size[1] + 1e-9
    # From a reachable cell every reachable cell has a finite geodesic distance.
    i, j = np.argwhere(grid.reachable)[0]
    field = grid.geodesic_field(*grid.cell_center(i, j))
    assert np.isfinite(field.distance[grid.reachable]).all()


def test_layout_is_reproducible_from_the_seed():
    a, _ = generate_layout(CONFIG, np.random.default_rng(7))
    b, _ = generate_layout(CONFIG, np.random.default_rng(7))
    c, _ = generate_layout(CONFIG, np.random.default_rng(8))
    assert a == b
    assert a != c


def test_room_count_and_size_are_configurable():
    config = LayoutConfig(num_rooms=(3, 3), room_size=(2.0, 2.5), obstacles_per_room=(0, 0))
    layout, _ = generate_layout(config, np.random.default_rng(0))
    assert len(layout.rooms) == 3 and not layout.obstacles
    assert all(2.0 <= r.x1 - r.x0 <= 2.5 and 2.0 <= r.y1 - r.y0 <= 2.5 for r in layout.rooms)


@pytest.mark.parametrize("kwargs", [
    {"door_width": (0.3, 0.4)},                 # narrower than the robot
    {"room_size": (1.0, 1.2)},                  # no room for a door
    {"num_rooms": (3, 2)},
    {"num_rooms": (0, 2)},
    {"room_size": (4.0, 3.0)},
    {"obstacles_per_room": (2, 1)},
    {"grid_resolution": 0.0},
])
def test_impossible_layout_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        LayoutConfig(**kwargs)
