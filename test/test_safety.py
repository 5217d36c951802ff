"""The collision monitor: its geometry, its inputs (real sensor_msgs messages), and the simulated
robot it keeps off a wall, driven by a real ONNX policy through the navigation controller."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle
from sensor_msgs.msg import CameraInfo, Image, LaserScan

from recore_nav.collision_monitor import (CameraIntrinsics, CollisionMonitor, Decision, DepthCamera, MonitorConfig,
                                          Obstacles, SafetyInputError, ScannerPose, camera_info_intrinsics,
                                          depth_image_metres, depth_obstacles, free_distance, scan_obstacles,
                                          scan_ranges)
from recore_nav.navigation_controller import ControllerConfig, NavigationController, OdometryReading
from recore_nav.policy import PolicyRuntime
from recore_nav.sim import PointNavEnv
from recore_nav.sim.layout import Box, Layout, Rect, enclosing_walls

# Nav2's zones alone: no steering, no turning away, no memory.
CONFIG = MonitorConfig(footprint_radius=0.2, stop_distance=0.15, slowdown_distance=0.4, slowdown_ratio=0.5,
                       steer_limit=0.0, turn_away=0.0, obstacle_memory=0.0)
FORWARD_VIEW = (0.0, math.pi / 4)
ROOM = Rect(0.0, 0.0, 4.0, 3.0)      # walls centred on the edges: the east wall's inner face at x = 3.95
EAST_WALL = 3.95


def points(*xy: tuple[float, float]) -> np.ndarray:
    return np.array(xy, dtype=np.float64).reshape(-1, 2)


def monitor_with(obstacles: np.ndarray, view: tuple[float, float] = FORWARD_VIEW,
                 config: MonitorConfig = CONFIG) -> CollisionMonitor:
    monitor = CollisionMonitor(config)
    monitor.set_obstacles(Obstacles(obstacles, view), received=0.0)
    return monitor


# Geometry ------------------------------------------------------------------------------------------
def test_free_distance_along_straight_and_curved_paths() -> None:
    ahead = points((1.0, 0.0))
    assert free_distance(0.5, 0.0, ahead, CONFIG) == math.inf            # beyond the slow-down distance
    assert free_distance(0.5, 0.0, points((0.5, 0.0)), CONFIG) == pytest.approx(0.28, abs=0.021)
    assert free_distance(0.5, 0.0, points((0.5, 0.3)), CONFIG) == math.inf   # passes beside the footprint
    # Beside the robot: straight on misses it, a tight left turn (0.2 m radius) sweeps the
    # footprint into it after about 1.4 rad of the turn.
    beside = points((0.1, 0.35))
    assert free_distance(0.3, 0.0, beside, CONFIG) == math.inf
    assert free_distance(0.3, 1.5, beside, CONFIG) == pytest.approx(0.28, abs=0.021)
    assert free_distance(0.3, -1.5, beside, CONFIG) == math.inf          # turning away from it
    assert free_distance(0.0, 1.5, beside, CONFIG) == math.inf           # rotation in place sweeps nothing


def test_what_the_robot_moves_away_from_does_not_stop_it() -> None:
    touching_behind = points((-0.1, 0.05))
    assert free_distance(0.5, 0.0, touching_behind, CONFIG) == math.inf
    assert free_distance(-0.5, 0.0, touching_behind, CONFIG) == 0.0
    touching_ahead = points((0.15, 0.0))
    assert free_distance(0.5, 0.0, touching_ahead, CONFIG) == 0.0


def test_a_polygon_footprint_is_swept_by_its_shape() -> None:
    wide = replace(CONFIG, footprint=((0.2, 0.35), (0.2, -0.35), (-0.2, -0.35), (-0.2, 0.35)))
    off_centre = points((0.5, 0.3))
    assert free_distance(0.5, 0.0, off_centre, CONFIG) == math.inf       # the 0.2 m circle passes it
    assert free_distance(0.5, 0.0, off_centre, wide) == pytest.approx(0.28, abs=0.021)


def test_stop_and_slowdown_zones_leave_rotation_alone() -> None:
    near = monitor_with(points((0.3, 0.0)))
    decision = near.limit(0.5, 0.7)
    assert decision.linear == 0.0 and decision.angular == 0.7
    assert decision.status == "stopped: obstacle 0.10 m"
    assert near.limit(0.0, 1.5).status is None                          # turning in place is not limited
    slowdown = monitor_with(points((0.5, 0.0)))
    decision = slowdown.limit(0.4, 0.0)
    assert decision.linear == pytest.approx(0.2) and decision.angular == 0.0
    assert decision.status == "slowed: obstacle 0.28 m"
    clear = monitor_with(points((1.5, 0.0)))
    assert clear.limit(0.5, 0.2).status is None and clear.limit(0.5, 0.2).linear == 0.5


def test_steering_takes_the_nearest_clear_turn_instead_of_stopping() -> None:
    wall_on_the_left = points(*[(x, 0.25) for x in np.linspace(0.0, 1.0, 51)])
    steering = monitor_with(wall_on_the_left, config=replace(CONFIG, steer_limit=1.5))
    decision = steering.limit(0.4, 1.0)                                  # into the wall
    assert decision.status.startswith("steered: obstacle") and decision.linear > 0.0
    assert -1.5 <= decision.angular < 1.0
    assert free_distance(decision.linear, decision.angular, wall_on_the_left, steering.config) >= 0.15
    assert monitor_with(wall_on_the_left).limit(0.4, 1.0).linear == 0.0  # steer_limit 0: a plain stop


def test_stopped_it_turns_away_from_the_obstacle_and_keeps_to_that_side() -> None:
    turning = replace(CONFIG, turn_away=1.0)
    box_ahead_left = monitor_with(points((0.3, 0.05), (0.3, 0.15)), config=turning)
    decision = box_ahead_left.limit(0.4, 0.2)                            # the policy turns into it, slowly
    assert (decision.linear, decision.angular) == (0.0, -1.0)
    assert box_ahead_left.limit(0.4, 1.3).angular == -1.3               # its own rate where faster
    dead_ahead = monitor_with(points((0.3, 0.0)), config=turning)
    sides = {dead_ahead.limit(0.4, w).angular > 0 for w in (0.5, -0.5, 0.8, -0.8)}
    assert len(sides) == 1, "turned back and forth"
    assert monitor_with(points((0.3, -0.1)), config=turning).limit(0.4, -0.5).angular == 1.0


def test_a_polygon_footprint_does_not_turn_into_what_its_corners_would_hit() -> None:
    long_robot = replace(CONFIG, footprint=((0.4, 0.15), (0.4, -0.15), (-0.2, -0.15), (-0.2, 0.15)))
    beside_the_nose = points((0.3, 0.22))
    assert monitor_with(beside_the_nose, config=long_robot).limit(0.0, 1.0) == Decision(0.0, 0.0,
                                                                                     "stopped: obstacle in the turn")
    assert monitor_with(beside_the_nose, config=long_robot).limit(0.0, -1.0).angular == -1.0   # turning away
    assert monitor_with(beside_the_nose).limit(0.0, 1.0).angular == 1.0                      # a circle turns freely


def test_with_command_latency_the_path_starts_where_the_previous_command_leads() -> None:
    lagging = replace(CONFIG, command_latency=0.1)
    wall = points((0.45, -0.1), (0.45, 0.0), (0.45, 0.1))
    assert monitor_with(wall).limit(0.5, 0.0, previous=(0.5, 0.0)).status == "slowed: obstacle 0.24 m"
    # 0.1 s more at 0.5 m/s before this command acts: 5 cm less room (to the 2 cm of the check).
    assert monitor_with(wall, config=lagging).limit(0.5, 0.0, previous=(0.5, 0.0)).status == "slowed: obstacle 0.18 m"
    # Turning left at 1.5 rad/s meanwhile, it heads past the wall's left end.
    short_wall = points((0.45, -0.1), (0.45, 0.0))
    assert monitor_with(short_wall, config=lagging).limit(0.5, 1.5, previous=(0.5, 1.5)).status is None


def test_motion_the_sensor_does_not_watch_is_stopped() -> None:
    forward_camera = monitor_with(points())
    decision = forward_camera.limit(-0.2, 0.5)
    assert (decision.linear, decision.angular) == (0.0, 0.5)
    assert decision.status == "stopped: reverse motion not monitored"
    all_round = monitor_with(points(), view=(0.0, math.pi))
    assert all_round.limit(-0.2, 0.5).status is None


def test_missing_stale_and_malformed_input_are_named() -> None:
    monitor = CollisionMonitor(CONFIG)
    assert monitor.input_problem(0.0) == "no safety input"
    monitor.set_obstacles(Obstacles(points(), FORWARD_VIEW), received=1.0)
    assert monitor.input_problem(1.5) is None
    assert monitor.input_problem(1.51) == "safety input stale (older than 0.5 s)"
    monitor.set_input_error("unsupported depth encoding 'rgb8'", received=1.6)
    assert monitor.input_problem(1.6) == "invalid safety input: unsupported depth encoding 'rgb8'"


def test_obstacles_out_of_view_are_remembered_by_odometry_for_a_while() -> None:
    monitor = CollisionMonitor(replace(CONFIG, obstacle_memory=2.0))
    wall_ahead = Obstacles(points((0.35, -0.1), (0.35, 0.0), (0.35, 0.1)), FORWARD_VIEW)
    monitor.set_obstacles(wall_ahead, 0.0, pose=(0.0, 0.0, 0.0))
    # Turned 90 degrees left: the wall is now on the right, out of view; the new reading is empty.
    turned = (0.0, 0.0, math.pi / 2)
    monitor.set_obstacles(Obstacles(points(), FORWARD_VIEW), 1.0, pose=turned)
    assert monitor.obstacle_points(turned) == pytest.approx(points((-0.1, -0.35), (0.0, -0.35), (0.1, -0.35)))
    assert monitor.limit(0.3, -1.5, turned).status == "slowed: obstacle 0.28 m"   # a tight right turn reaches it
    assert monitor.limit(0.3, -1.5).status is None                    # the newest reading alone: nothing there
    # Looking at it again with nothing there: gone. And out of view, it is forgotten after 2 s.
    monitor.set_obstacles(Obstacles(points(), FORWARD_VIEW), 1.1, pose=(0.0, 0.0, 0.0))
    assert len(monitor.obstacle_points((0.0, 0.0, 0.0))) == 0
    monitor.set_obstacles(wall_ahead, 2.0, pose=(0.0, 0.0, 0.0))
    monitor.set_obstacles(Obstacles(points(), FORWARD_VIEW), 3.0, pose=turned)
    assert len(monitor.obstacle_points(turned)) == 3
    monitor.set_obstacles(Obstacles(points(), FORWARD_VIEW), 4.5, pose=turned)
    assert len(monitor.obstacle_points(turned)) == 0


# Inputs --------------------------------------------------------------------------------------------
def depth_message(values: np.ndarray, encoding: str, bigendian: bool = False) -> Image:
    dtype = {"32FC1": np.float32, "16UC1": np.uint16}[encoding]
    array = values.astype(np.dtype(dtype).newbyteorder(">" if bigendian else "<"))
    msg = Image(height=values.shape[0], width=values.shape[1], encoding=encoding,
                is_bigendian=int(bigendian), step=values.shape[1] * array.itemsize)
    msg.data = array.tobytes()
    return msg


@pytest.mark.parametrize("bigendian", [False, True])
def test_depth_images_in_metres_and_millimetres(bigendian: bool) -> None:
    metres = np.array([[1.5, np.nan], [np.inf, -np.inf]], dtype=np.float32)
    depth = depth_image_metres(depth_message(metres, "32FC1", bigendian))
    assert depth[0, 0] == 1.5 and np.isnan(depth[0, 1]) and np.isnan(depth[1, 0]) and depth[1, 1] == -np.inf
    millimetres = np.array([[1500, 0], [250, 65535]], dtype=np.uint16)
    depth = depth_image_metres(depth_message(millimetres, "16UC1", bigendian))
    assert depth[0, 0] == pytest.approx(1.5) and np.isnan(depth[0, 1]) and depth[1, 0] == pytest.approx(0.25)


def test_malformed_depth_images_are_refused_with_a_reason() -> None:
    good = depth_message(np.ones((4, 6), np.float32), "32FC1")
    wrong_encoding = depth_message(np.ones((4, 6), np.float32), "32FC1")
    wrong_encoding.encoding = "rgb8"
    short = depth_message(np.ones((4, 6), np.float32), "32FC1")
    short.data = bytes(short.data)[:-1]
    narrow = depth_message(np.ones((4, 6), np.float32), "32FC1")
    narrow.step = 6 * 2
    assert depth_image_metres(good).shape == (4, 6)
    for msg, reason in ((wrong_encoding, "unsupported depth encoding 'rgb8'"), (short, "buffer has 95 bytes"),
                        (narrow, "row step 12 is smaller than width 6 x 1 channels of 4 bytes")):
        with pytest.raises(SafetyInputError, match=reason.replace("(", r"\(")):
            depth_image_metres(msg)


def scan_message(ranges: list[float], angle_min: float = -math.pi / 2, angle_max: float = math.pi / 2) -> LaserScan:
    return LaserScan(angle_min=angle_min, angle_max=angle_max,
                     angle_increment=(angle_max - angle_min) / (len(ranges) - 1),
                     range_min=0.1, range_max=5.0, ranges=ranges)


def test_scans_become_obstacles_in_the_base_frame() -> None:
    scanner = ScannerPose(x=0.1, y=0.0, yaw=0.0)
    obstacles = scan_obstacles(*scan_ranges(scan_message([1.0, math.inf, 0.5, math.nan, -math.inf])), scanner)
    # -pi/2: 1 m to the right; 0: 0.5 m ahead; pi/2: too close to measure, an obstacle at range_min.
    assert obstacles.points == pytest.approx(points((0.1, -1.0), (0.6, 0.0), (0.1, 0.1)), abs=1e-6)
    assert obstacles.sees(0.0) and not obstacles.sees(math.pi)
    assert scan_obstacles(*scan_ranges(scan_message([1.0] * 360, -math.pi, math.pi)), scanner).sees(math.pi)


@pytest.mark.parametrize("field, value, reason", [
    ("angle_increment", 0.0, "angle_increment 0 does not lead"),
    ("range_min", 6.0, "range limits"),
    ("ranges", [1.0] * 9, "scan has 9 ranges, its angles need 5"),
    ("angle_max", math.nan, "not finite"),
])
def test_malformed_scans_are_refused_with_a_reason(field: str, value: object, reason: str) -> None:
    msg = scan_message([1.0] * 5)
    setattr(msg, field, value)
    with pytest.raises(SafetyInputError, match=reason):
        scan_ranges(msg)


# The simulated robot ---------------------------------------------------------------------------------
def room_env(obstacles: tuple = ()) -> PointNavEnv:
    layout = Layout(rooms=(ROOM,), walls=tuple(enclosing_walls(ROOM)), obstacles=obstacles)
    return PointNavEnv(image_size=64, fixed_layout=layout, seed=0)


def test_depth_points_of_the_simulator_lie_on_its_wall_and_not_on_its_floor() -> None:
    env = room_env()
    obs, _ = env.reset(options={"start": (3.5, 1.5, 0.0), "goal": (1.0, 1.5)})
    obstacles = depth_obstacles(obs["depth"], DepthCamera(), CONFIG)
    assert len(obstacles.points) > 10
    assert obstacles.points[:, 0] == pytest.approx(EAST_WALL - 3.5, abs=0.011)   # the wall, 0.45 m ahead
    assert np.abs(obstacles.points[:, 1]).max() <= 0.45 + 0.01                    # within the 90 degree view
    env.close()


def test_depth_points_use_the_cameras_own_intrinsics() -> None:
    """The sim2real camera is narrower than the nominal 90 degrees: with its intrinsics (what its
    CameraInfo says) a box beside the path lies where it is; assuming 90 degrees spreads it outward,
    beyond what the camera can see."""
    box = Box(cx=2.5, cy=2.0, hx=0.1, hy=0.3, height=1.0)     # front face 0.5 m ahead, 0.2-0.8 m to the left
    env = PointNavEnv(image_size=64, split="sim2real", seed=0,
                      fixed_layout=Layout(rooms=(ROOM,), walls=tuple(enclosing_walls(ROOM)), obstacles=(box,)))
    obs, info = env.reset(options={"start": (1.9, 1.5, 0.0), "goal": (1.0, 1.5)})
    fov = info["camera_vertical_fov"]
    assert fov == pytest.approx(env.camera_vertical_fov()) and fov < math.radians(85)
    depth = obs["depth"]
    for intrinsics, on_the_box in ((CameraIntrinsics.from_vertical_fov(fov, 64, 64), True), (None, False)):
        found = depth_obstacles(depth, DepthCamera(), CONFIG, intrinsics).points
        face = found[np.abs(found[:, 0] - 0.5) < 0.03]
        assert len(face) > 3
        # The box is seen from its near edge (0.2 m left) to the view's edge; depth noise is 2%.
        assert face[:, 1].min() >= 0.2 - 0.03
        assert (face[:, 1].max() <= 0.5 * math.tan(fov / 2) + 0.03) == on_the_box
    # The same camera's CameraInfo at another resolution places the points identically.
    info_640 = CameraIntrinsics.from_vertical_fov(fov, 640, 640)
    assert np.allclose(depth_obstacles(depth, DepthCamera(), CONFIG, info_640).points,
                       depth_obstacles(depth, DepthCamera(), CONFIG, CameraIntrinsics.from_vertical_fov(fov, 64, 64)).points)
    env.close()


@pytest.mark.parametrize("field, value, reason", [
    ("k", [0.0] * 9, "focal lengths 0, 0"),
    ("k", [50.0, 0, 31.5, 0, math.nan, 31.5, 0, 0, 1], "K is not 9 finite numbers"),
    ("k", [50.0, 0, 90.0, 0, 50.0, 31.5, 0, 0, 1], r"principal point \(90, 31.5\) outside the 64x64 image"),
    ("width", 0, "image size 0x64"),
])
def test_unusable_camera_info_is_refused_with_its_reason(field: str, value, reason: str) -> None:
    msg = CameraInfo(width=64, height=64, k=[50.0, 0.0, 31.5, 0.0, 50.0, 31.5, 0.0, 0.0, 1.0])
    assert camera_info_intrinsics(msg) == CameraIntrinsics(50.0, 50.0, 31.5, 31.5, 64, 64)
    setattr(msg, field, value)
    with pytest.raises(SafetyInputError, match=f"invalid camera_info: {reason}"):
        camera_info_intrinsics(msg)


def drive(env: PointNavEnv, controller: NavigationController, steps: int, start: int) -> tuple[list, list]:
    """`steps` control periods of the controller driving the simulated robot; (commands, infos)."""
    commands, infos = [], []
    obs, info = env._last_obs, env._info(collision=False)
    for k in range(start, start + steps):
        now = k * 0.1
        x, y, yaw = env.robot_pose()
        controller.set_odometry(OdometryReading.planar(x, y, yaw, "odom"), now)
        controller.set_image(obs["rgb"], now)
        controller.monitor.set_obstacles(depth_obstacles(obs["depth"], DepthCamera(), controller.monitor.config),
                                         now, controller.pose)
        command = controller.tick(now)
        obs, _, _, _, info = env.step(np.array([command.linear / 0.5, command.angular / 1.5], np.float32))
        commands.append(command)
        infos.append(info)
    return commands, infos


@pytest.mark.parametrize("obstacle", [None, Box(3.0, 1.5, 0.3, 0.3, 0.45)], ids=["wall", "low box"])
def test_the_monitor_stops_the_simulated_robot_before_a_wall_and_lets_it_turn_away(tmp_path, obstacle) -> None:
    env = room_env((obstacle,) if obstacle else ())
    env.reset(options={"start": (1.0, 1.5, 0.0), "goal": (0.5, 0.5)})
    blocking = EAST_WALL if obstacle is None else obstacle.cx - obstacle.hx
    runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "bundle"), providers="cpu")
    controller = NavigationController(runtime, ControllerConfig(), CollisionMonitor(CONFIG))
    controller.set_goal(10.0, 1.5, "odom")                   # straight through it
    commands, infos = drive(env, controller, 80, start=0)
    assert not any(info["collision"] for info in infos)
    assert any(c.status.startswith("slowed: obstacle") for c in commands)
    assert commands[-1].status.startswith("stopped: obstacle") and commands[-1].linear == 0.0
    gap = blocking - env.robot_pose()[0] - env.robot.radius
    assert 0.0 < gap < 0.2, f"stopped {gap:.2f} m away"
    assert max(info["robot_pose"][0] for info in infos) > 1.0 + 1.0        # it drove there first

    controller.set_goal(1.0, 2.8, "odom")                    # behind and to the left: turn, then go
    commands, infos = drive(env, controller, 80, start=80)
    assert not any(info["collision"] for info in infos)
    assert any(c.status == "stopped: reverse motion not monitored" and c.angular > 0.0 for c in commands)
    x, y, _ = env.robot_pose()
    assert math.hypot(x - 1.0, y - 2.8) < 0.5 and commands[-1].status in ("navigating", "reached")
    env.close()


def test_with_the_shipped_settings_the_simulated_robot_pushed_at_a_wall_never_touches_it(tmp_path) -> None:
    """The policy keeps driving at the wall; steering, turning away and memory keep it off."""
    env = room_env()
    env.reset(options={"start": (2.5, 1.0, 0.3), "goal": (0.5, 0.5)})
    runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "bundle"), providers="cpu")
    controller = NavigationController(runtime, ControllerConfig(), CollisionMonitor(MonitorConfig()))
    controller.set_goal(10.0, 2.0, "odom")                   # through the east wall, ahead and to the left
    commands, infos = drive(env, controller, 150, start=0)
    assert not any(info["collision"] for info in infos)
    statuses = {c.status.split(" 0")[0] for c in commands}
    assert {"stopped: obstacle", "steered: obstacle"} & statuses
    assert max(info["robot_pose"][0] for info in infos) + env.robot.radius < EAST_WALL
    env.close()
