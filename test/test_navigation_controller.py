"""NavigationController without ROS, with a real PolicyRuntime on a small real ONNX graph: limits,
timeouts, odometry checked whole, the collision monitor's place in the loop, and the executed
command fed back to the policy."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle

from recore_nav.collision_monitor import CollisionMonitor, MonitorConfig, Obstacles
from recore_nav.navigation_controller import (ControllerConfig, NavigationController, OdometryReading,
                                              limit_speed_change, reachable_speeds, status_cause)
from recore_nav.policy import PolicyRuntime

CONFIG = ControllerConfig(control_period=0.1, goal_tolerance=0.36, image_timeout=0.5, odom_timeout=0.5,
                          max_linear_speed=0.4, max_angular_speed=1.0, max_linear_accel=1.0,
                          max_angular_accel=3.0)
IMAGE = np.zeros((64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> PolicyRuntime:
    return PolicyRuntime(write_goal_seeking_bundle(tmp_path_factory.mktemp("bundle")), providers="cpu")


@pytest.fixture
def controller(runtime: PolicyRuntime) -> NavigationController:
    runtime.reset()
    return NavigationController(runtime, CONFIG)


def feed(controller: NavigationController, now: float, x: float = 0.0, y: float = 0.0, yaw: float = 0.0) -> None:
    controller.set_odometry(OdometryReading.planar(x, y, yaw, "odom"), now)
    controller.set_image(IMAGE, now)


def test_idle_without_goal(controller: NavigationController) -> None:
    feed(controller, 0.0)
    command = controller.tick(0.0)
    assert command.is_stop and command.status == "idle"


def test_drives_with_speed_and_acceleration_limits(controller: NavigationController) -> None:
    controller.set_goal(5.0, 2.0, "odom")
    commands = []
    for i in range(20):
        feed(controller, i * 0.1)
        commands.append(controller.tick(i * 0.1))
    assert all(c.status == "navigating" for c in commands)
    # First period: at most accel * period.
    assert commands[0].linear == pytest.approx(0.1) and commands[0].angular == pytest.approx(0.3)
    assert max(c.linear for c in commands) == pytest.approx(0.4)       # speed limit, below the bundle's 0.5
    assert max(abs(c.angular) for c in commands) <= 1.0 + 1e-9
    for before, after in zip(commands, commands[1:]):
        assert after.linear - before.linear <= 0.1 + 1e-9


def test_stopping_is_immediate_and_speeding_up_again_is_limited(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    for i in range(10):
        feed(controller, i * 0.1)
        controller.tick(i * 0.1)
    # The image stops coming: zero at the first tick past the timeout.
    controller.set_odometry(OdometryReading.planar(0.0, 0.0, 0.0, "odom"), 1.5)
    assert controller.tick(1.5).status == "stopped: image older than 0.5 s"
    assert controller.tick(1.5).is_stop
    feed(controller, 1.6)
    assert controller.tick(1.6).linear == pytest.approx(0.1)


def test_odometry_timeout_and_missing_inputs(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    assert controller.tick(0.0).status == "stopped: no odometry"
    controller.set_odometry(OdometryReading.planar(0.0, 0.0, 0.0, "odom"), 0.0)
    assert controller.tick(0.0).status == "stopped: no image"
    controller.set_image(IMAGE, 0.0)
    assert controller.tick(0.1).status == "navigating"
    controller.set_image(IMAGE, 0.6)
    command = controller.tick(0.6)
    assert command.is_stop and command.status == "stopped: odometry older than 0.5 s"


def test_reached_stops_latches_and_a_new_goal_resets_the_policy(controller: NavigationController,
                                                                  runtime: PolicyRuntime) -> None:
    controller.set_goal(1.0, 0.0, "odom")
    feed(controller, 0.0)
    assert controller.tick(0.0).status == "navigating"
    assert runtime.state[0] == 1.0
    feed(controller, 0.1, x=0.7)
    command = controller.tick(0.1)
    assert command.is_stop and command.status == "reached"
    feed(controller, 0.2, x=-3.0)            # pushed away: stays stopped until a new goal
    assert controller.tick(0.2).status == "reached"
    controller.set_goal(-5.0, 0.0, "odom")
    assert runtime.state[0] == 0.0           # reset on the new goal
    assert controller.tick(0.2).status == "navigating"


def test_invalid_inputs_stop_until_valid_again(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    feed(controller, 0.0)
    assert controller.tick(0.0).status == "navigating"
    controller.set_image_error("unsupported encoding 'yuv422'", 0.1)
    command = controller.tick(0.1)
    assert command.is_stop and command.status == "stopped: invalid image: unsupported encoding 'yuv422'"
    controller.set_image(IMAGE, 0.2)
    assert controller.tick(0.2).status == "navigating"


def test_refused_goal_keeps_the_current_one(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    feed(controller, 0.0)
    controller.tick(0.0)
    assert controller.set_goal(5.0, 0.0, "map") == "goal frame 'map' is not the odometry frame 'odom'"
    assert controller.set_goal(1.0, math.nan, "odom") == "goal position is not finite"
    assert controller.set_goal(1.0, 1.0, "") == "goal has no frame_id"
    feed(controller, 0.1)
    assert controller.tick(0.1).status == "navigating"
    assert controller.goal_distance == pytest.approx(5.0)
    controller.clear_goal()
    assert controller.tick(0.2).status == "idle"


def test_goal_before_any_odometry_is_checked_when_odometry_arrives(runtime: PolicyRuntime) -> None:
    controller = NavigationController(runtime, CONFIG)
    assert controller.set_goal(5.0, 0.0, "map") is None
    controller.set_odometry(OdometryReading.planar(0.0, 0.0, 0.0, "odom"), 0.0)
    controller.set_image(IMAGE, 0.0)
    assert controller.tick(0.0).status.startswith("stopped: goal rejected: goal frame 'map'")
    assert controller.tick(0.1).is_stop


@pytest.mark.parametrize("previous, target, expected", [
    (0.0, 0.5, 0.1),     # speeding up: limited
    (0.3, 0.5, 0.4),
    (0.5, 0.2, 0.2),     # slowing down: immediate
    (0.5, 0.0, 0.0),     # stopping: immediate
    (0.3, -0.5, -0.1),   # reversing: through zero, then limited
    (-0.3, -0.35, -0.35),
])
def test_limit_speed_change(previous: float, target: float, expected: float) -> None:
    assert limit_speed_change(previous, target, 0.1) == pytest.approx(expected)


GOOD = OdometryReading("odom", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (0.2, 0.0, 0.0), (0.0, 0.0, 0.3))
BAD_ODOMETRY = [
    (dict(position=(math.nan, 0.0, 0.0)), "position is not finite"),
    (dict(position=(0.0, 0.0, math.inf)), "position is not finite"),
    (dict(orientation=(0.0, 0.0, math.nan, 1.0)), "orientation is not finite"),
    (dict(orientation=(0.0, 0.0, 0.0, 0.0)), "orientation is not a unit quaternion (norm 0)"),
    (dict(orientation=(0.0, 0.0, 0.0, 0.5)), "orientation is not a unit quaternion (norm 0.5)"),
    (dict(orientation=(0.0, 0.0, 0.8, 0.8)), "orientation is not a unit quaternion (norm 1.13)"),
    (dict(linear_velocity=(math.inf, 0.0, 0.0)), "twist is not finite"),
    (dict(angular_velocity=(0.0, 0.0, math.nan)), "twist is not finite"),
]


@pytest.mark.parametrize("fault, reason", BAD_ODOMETRY)
def test_every_kind_of_bad_odometry_stops_until_good_again(controller: NavigationController, fault: dict,
                                                            reason: str) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    controller.set_odometry(GOOD, 0.0)
    controller.set_image(IMAGE, 0.0)
    assert controller.tick(0.0).status == "navigating"
    assert controller.set_odometry(replace(GOOD, **fault), 0.1) == reason
    assert controller.pose is None          # nothing derived from the broken message passes on
    command = controller.tick(0.1)
    assert command.is_stop and command.status == f"stopped: invalid odometry: {reason}"
    assert controller.set_odometry(GOOD, 0.2) is None
    assert controller.tick(0.2).status == "navigating"


def test_a_quaternion_rounded_in_transit_is_still_a_rotation(controller: NavigationController) -> None:
    almost = replace(GOOD, orientation=(0.0, 0.0, 0.7072, 0.7072))   # norm 1.0001
    assert controller.set_odometry(almost, 0.0) is None
    assert controller.pose[2] == pytest.approx(math.pi / 2, abs=1e-6)


def test_status_cause_drops_the_numbers() -> None:
    assert status_cause("stopped: obstacle 0.20 m") == "stopped: obstacle"
    assert status_cause("slowed: obstacle 0.42 m") == "slowed: obstacle"
    assert status_cause("stopped: safety input stale (older than 0.5 s)") == "stopped: safety input stale"
    assert status_cause("navigating") == "navigating"


@pytest.fixture
def echo_runtime(tmp_path_factory) -> PolicyRuntime:
    """A runtime whose state shows the prev_action it was given (state[:2])."""
    return PolicyRuntime(write_goal_seeking_bundle(tmp_path_factory.mktemp("echo"), echo_prev_action=True),
                         providers="cpu")


def test_the_command_actually_sent_reaches_the_runtime_as_prev_action(echo_runtime: PolicyRuntime) -> None:
    controller = NavigationController(echo_runtime, CONFIG)
    controller.set_goal(5.0, 2.0, "odom")
    sent = []
    for i in range(4):
        feed(controller, i * 0.1)
        command = controller.tick(i * 0.1)
        fed_back = echo_runtime.state[:2]
        # What the policy was told at this step is the last command sent, in the bundle's units
        # (0.5 m/s and 1.5 rad/s per unit), not its own unlimited action.
        previous = sent[-1] if sent else (0.0, 0.0)
        assert fed_back == pytest.approx([previous[0] / 0.5, previous[1] / 1.5], abs=1e-6)
        sent.append((command.linear, command.angular))
    assert sent[0] == pytest.approx((0.1, 0.3))        # limited by the accelerations: the policy asked more
    assert echo_runtime.prev_action[0] > 0.9


def test_without_command_feedback_the_runtime_keeps_its_own_action(echo_runtime: PolicyRuntime) -> None:
    controller = NavigationController(echo_runtime, replace(CONFIG, command_feedback=False))
    controller.set_goal(5.0, 0.0, "odom")
    feed(controller, 0.0)
    controller.tick(0.0)
    own = echo_runtime.prev_action
    feed(controller, 0.1)
    controller.tick(0.1)
    assert echo_runtime.state[:2] == pytest.approx(own)
    assert own[0] > 0.9                                   # not the 0.1 m/s that was sent


WALL_AHEAD = Obstacles(np.array([[0.3, y] for y in np.linspace(-1.0, 1.0, 41)]), (0.0, math.pi / 4))


def test_the_monitor_has_the_last_word_and_its_stop_is_fed_back(echo_runtime: PolicyRuntime) -> None:
    monitor = CollisionMonitor(MonitorConfig(footprint_radius=0.2, stop_distance=0.15, slowdown_distance=0.4,
                                             steer_limit=0.0, turn_away=0.0))
    controller = NavigationController(echo_runtime, CONFIG, monitor)
    controller.set_goal(5.0, 2.0, "odom")              # ahead and to the left, behind the wall
    feed(controller, 0.0)
    command = controller.tick(0.0)
    assert command.is_stop and command.status == "stopped: no safety input"
    monitor.set_obstacles(WALL_AHEAD, 0.0)
    command = controller.tick(0.05)
    # 0.1 m to the wall from the footprint: linear velocity stopped, the turn toward the goal allowed.
    assert command.status == "stopped: obstacle 0.10 m"
    assert command.linear == 0.0 and command.angular == pytest.approx(0.3)
    feed(controller, 0.1)
    controller.tick(0.1)
    assert echo_runtime.state[:2] == pytest.approx([0.0, 0.3 / 1.5], abs=1e-6)
    assert controller.tick(0.6).status == "stopped: safety input stale (older than 0.5 s)"
    assert controller.tick(0.6).is_stop
    monitor.set_input_error("unsupported depth encoding 'rgb8'", 0.7)
    feed(controller, 0.7)
    assert controller.tick(0.7).status == "stopped: invalid safety input: unsupported depth encoding 'rgb8'"


@pytest.mark.parametrize("previous, expected", [(0.0, (-0.3, 0.3)), (1.0, (-0.3, 1.3)), (-1.4, (-1.5, 0.3))])
def test_reachable_speeds_are_what_limit_speed_change_allows(previous: float, expected: tuple) -> None:
    low, high = reachable_speeds(previous, 0.3, 1.5)
    assert (low, high) == pytest.approx(expected)
    for target in np.linspace(-1.5, 1.5, 31):
        assert low - 1e-9 <= limit_speed_change(previous, float(target), 0.3) <= high + 1e-9


def test_turns_the_monitor_chooses_respect_the_acceleration_limit(runtime: PolicyRuntime) -> None:
    monitor = CollisionMonitor(MonitorConfig(turn_away=1.0, steer_limit=1.5, obstacle_memory=0.0))
    controller = NavigationController(runtime, CONFIG, monitor)
    controller.set_goal(5.0, 0.0, "odom")                   # dead ahead, through the wall
    angulars = []
    for i in range(6):
        feed(controller, i * 0.1)
        monitor.set_obstacles(WALL_AHEAD, i * 0.1)
        command = controller.tick(i * 0.1)
        assert command.status.startswith(("stopped: obstacle", "steered: obstacle")), command.status
        angulars.append(command.angular)
    steps = np.abs(np.diff([0.0] + angulars))
    assert np.all(steps <= 3.0 * 0.1 + 1e-9), angulars     # CONFIG: 3 rad/s^2
    assert abs(angulars[-1]) == pytest.approx(1.0)           # turning away, once it got there
