"""NavigationController without ROS, with a real PolicyRuntime on a small real ONNX graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle

from recore_nav.navigation_controller import ControllerConfig, NavigationController, limit_speed_change
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
    controller.set_odometry(x, y, yaw, "odom", now)
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
    controller.set_odometry(0.0, 0.0, 0.0, "odom", 1.5)
    assert controller.tick(1.5).status == "stopped: image older than 0.5 s"
    assert controller.tick(1.5).is_stop
    feed(controller, 1.6)
    assert controller.tick(1.6).linear == pytest.approx(0.1)


def test_odometry_timeout_and_missing_inputs(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    assert controller.tick(0.0).status == "stopped: no odometry"
    controller.set_odometry(0.0, 0.0, 0.0, "odom", 0.0)
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
    assert controller.set_odometry(math.nan, 0.0, 0.0, "odom", 0.3) == "odometry pose is not finite"
    assert controller.tick(0.3).status == "stopped: invalid odometry: odometry pose is not finite"
    assert controller.set_odometry(0.0, 0.0, math.inf, "odom", 0.4) is not None
    assert controller.tick(0.4).is_stop
    feed(controller, 0.5)
    assert controller.tick(0.5).status == "navigating"


def test_goal_in_another_frame_is_rejected_and_stops(controller: NavigationController) -> None:
    controller.set_goal(5.0, 0.0, "odom")
    feed(controller, 0.0)
    controller.tick(0.0)
    reason = controller.set_goal(5.0, 0.0, "map")
    assert reason == "goal frame 'map' is not the odometry frame 'odom'"
    command = controller.tick(0.1)
    assert command.is_stop and command.status == f"stopped: goal rejected: {reason}"
    assert controller.set_goal(1.0, math.nan, "odom") == "goal position is not finite"
    assert controller.set_goal(1.0, 1.0, "") == "goal has no frame_id"


def test_goal_before_any_odometry_is_checked_when_odometry_arrives(runtime: PolicyRuntime) -> None:
    controller = NavigationController(runtime, CONFIG)
    assert controller.set_goal(5.0, 0.0, "map") is None
    controller.set_odometry(0.0, 0.0, 0.0, "odom", 0.0)
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
