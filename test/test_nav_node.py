"""The navigation node in its own process, driven over real DDS by a kinematic robot in the test.

The test process plays the robot: it publishes camera images, depth images of its world (the
floor and, where a test puts one, a wall) and odometry (integrating the velocity commands it
receives, a unicycle in the plane) and goals, and records every Twist and status the node
publishes. The node runs `python -m recore_nav.nav_node` with config/robot.yaml (collision
monitor on) and a small real ONNX policy that steers toward the goal.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle

from conftest import REPO_ROOT

PARAMS_FILE = REPO_ROOT / "config" / "robot.yaml"
PERIOD = 0.1            # control_rate_hz 10 in robot.yaml
TIMEOUT = 0.5           # image_timeout and odom_timeout in robot.yaml
MAX_LINEAR, MAX_ANGULAR = 0.5, 1.5
MAX_LINEAR_ACCEL, MAX_ANGULAR_ACCEL = 1.0, 3.0
# Delivery and scheduling on a loaded 2-core machine, on top of what the node promises.
SLACK = 0.3
CAMERA_HEIGHT = 0.5     # the depth camera of robot.yaml: at base_link's origin, level, 90 degrees
ROBOT_RADIUS = 0.18     # footprint_radius 0.2 in robot.yaml is this plus a margin


def depth_image(x: float, y: float, yaw: float, wall_x: float | None, size: int = 64) -> np.ndarray:
    """What a level 90-degree depth camera 0.5 m above the robot's centre sees: the floor and, where
    `wall_x` is given, an endless wall at x = wall_x; NaN (no return) where a ray meets neither."""
    offset = (np.arange(size) + 0.5 - size / 2.0) / (size / 2.0)     # tan of the ray's angle
    up, left = np.meshgrid(-offset, -offset, indexing="ij")
    along = np.full((size, size), np.inf)
    along[up < 0] = CAMERA_HEIGHT / -up[up < 0]                       # depth where the ray meets the floor
    if wall_x is not None:
        dx = math.cos(yaw) - math.sin(yaw) * left                     # the ray's x per metre of depth
        with np.errstate(divide="ignore"):
            to_wall = np.where(dx > 0, (wall_x - x) / dx, np.inf)
        along = np.minimum(along, to_wall)
    return np.where(np.isfinite(along), along, np.nan).astype(np.float32)


def depth_msg(depth: np.ndarray, encoding: str = "32FC1"):
    from sensor_msgs.msg import Image

    msg = Image(height=depth.shape[0], width=depth.shape[1], encoding=encoding, step=depth.shape[1] * 4)
    msg.data = depth.astype(np.float32).tobytes()
    return msg


def camera_info_msg(size: int = 64, vertical_fov: float = math.pi / 2):
    """The intrinsics of depth_image's camera: square pixels, centred, this field of view."""
    from sensor_msgs.msg import CameraInfo

    focal = (size / 2.0) / math.tan(vertical_fov / 2.0)
    centre = (size - 1) / 2.0
    return CameraInfo(height=size, width=size, k=[focal, 0.0, centre, 0.0, focal, centre, 0.0, 0.0, 1.0])


def rgb8_image(width: int = 64, height: int = 64, encoding: str = "rgb8", data: bytes | None = None):
    from sensor_msgs.msg import Image

    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "rgba8": 4}.get(encoding, 2)
    msg = Image(height=height, width=width, encoding=encoding, step=width * channels)
    msg.data = data if data is not None else bytes(np.random.default_rng(0).integers(
        0, 256, height * width * channels, dtype=np.uint8))
    return msg


class KinematicRobot:
    """A unicycle robot with a camera, in the test process, talking to the node over DDS."""

    def __init__(self, context, camera_hz: float = 20.0, image_msg=None) -> None:
        from geometry_msgs.msg import PoseStamped, Twist
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        self.node = Node("kinematic_robot", context=context)
        self.lock = threading.Lock()
        self.x = self.y = self.yaw = 0.0
        self.max_x = 0.0
        self.twists: list[tuple[float, float, float]] = []     # (received, linear, angular)
        self.statuses: list[tuple[float, str]] = []
        self.publish_images = True
        self.publish_odom = True
        self.image_msg = image_msg or rgb8_image()
        self.odom_frame = "odom"
        self.odom_fault = None                # a function that breaks each Odometry message, or None
        self.wall_x: float | None = None      # the depth camera sees a wall at this x, or open floor
        self.publish_depth = True
        self.depth_override = None            # an Image sent instead of the real depth (malformed ones)
        self.camera_info = camera_info_msg()  # sent beside every depth image; None: not sent
        self.last_image_sent = 0.0
        self.last_depth_sent = 0.0
        self.last_odom_sent = 0.0
        self._cmd = (0.0, 0.0)
        self._last_integration = time.monotonic()

        self.image_pub = self.node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        self.depth_pub = self.node.create_publisher(Image, "camera/depth", qos_profile_sensor_data)
        self.camera_info_pub = self.node.create_publisher(CameraInfo, "camera/depth/camera_info",
                                                          qos_profile_sensor_data)
        self.odom_pub = self.node.create_publisher(Odometry, "odom", 10)
        self.goal_pub = self.node.create_publisher(PoseStamped, "goal_pose", 10)
        self.node.create_subscription(Twist, "cmd_vel", self._on_twist, 50)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(String, "navigation_status", self._on_status, latched)
        self.node.create_timer(1.0 / camera_hz, self._send_image)
        self.node.create_timer(0.05, self._send_odom)
        self._Odometry, self._PoseStamped = Odometry, PoseStamped
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(5.0)
        self.node.destroy_node()

    # Robot side ---------------------------------------------------------------------------------
    def _on_twist(self, msg) -> None:
        with self.lock:
            self._integrate()
            self._cmd = (msg.linear.x, msg.angular.z)
            self.twists.append((time.monotonic(), msg.linear.x, msg.angular.z))

    def _on_status(self, msg) -> None:
        with self.lock:
            self.statuses.append((time.monotonic(), msg.data))

    def _integrate(self) -> None:
        now = time.monotonic()
        dt, self._last_integration = now - self._last_integration, now
        linear, angular = self._cmd
        if all(math.isfinite(v) for v in (linear, angular)):
            self.x += linear * math.cos(self.yaw) * dt
            self.y += linear * math.sin(self.yaw) * dt
            self.yaw += angular * dt
            self.max_x = max(self.max_x, self.x)

    def _send_image(self) -> None:
        if self.publish_images:
            self.image_pub.publish(self.image_msg)
            self.last_image_sent = time.monotonic()
        if self.publish_depth:
            with self.lock:
                self._integrate()
                msg = self.depth_override or depth_msg(depth_image(self.x, self.y, self.yaw, self.wall_x))
                info = self.camera_info
            if info is not None:
                self.camera_info_pub.publish(info)
            self.depth_pub.publish(msg)
            self.last_depth_sent = time.monotonic()

    def _send_odom(self) -> None:
        if not self.publish_odom:
            return
        with self.lock:
            self._integrate()
            msg = self._Odometry()
            msg.header.frame_id = self.odom_frame
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.child_frame_id = "base_link"
            msg.pose.pose.position.x = self.x
            msg.pose.pose.position.y = self.y
            msg.pose.pose.orientation.z = math.sin(self.yaw / 2.0)
            msg.pose.pose.orientation.w = math.cos(self.yaw / 2.0)
            if self.odom_fault is not None:
                self.odom_fault(msg)
        self.odom_pub.publish(msg)
        self.last_odom_sent = time.monotonic()

    # Test side ----------------------------------------------------------------------------------
    def send_goal(self, x: float, y: float, frame_id: str = "odom") -> None:
        msg = self._PoseStamped()
        msg.header.frame_id = frame_id
        msg.pose.position.x, msg.pose.position.y = x, y
        msg.pose.orientation.w = 1.0
        self.goal_pub.publish(msg)

    def status(self) -> str:
        with self.lock:
            return self.statuses[-1][1] if self.statuses else ""

    def twists_since(self, since: float) -> list[tuple[float, float, float]]:
        with self.lock:
            return [t for t in self.twists if t[0] >= since]

    def wait_for(self, predicate, timeout: float, what: str, node=None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if node is not None and not node.alive():
                pytest.fail(f"node exited while waiting for {what}:\n{node.output()}")
            time.sleep(0.02)
        log = node.output() if node is not None else ""
        pytest.fail(f"timed out after {timeout} s waiting for {what}; status {self.status()!r}\n{log}")

    def wait_for_status(self, prefix: str, timeout: float, node=None) -> float:
        """Wait for a status starting with prefix; return when it arrived."""
        def seen() -> bool:
            return self.status().startswith(prefix)
        self.wait_for(seen, timeout, f"status {prefix!r}", node)
        with self.lock:
            return self.statuses[-1][0]

    def wait_for_motion(self, timeout: float, node=None) -> None:
        start = time.monotonic()
        self.wait_for(lambda: any(abs(v) > 0.05 for _, v, _ in self.twists_since(start)), timeout,
                      "a non-zero velocity command", node)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return write_goal_seeking_bundle(tmp_path / "bundle")


@pytest.fixture
def nav_node(start_node, bundle: Path):
    return start_node("recore_nav.nav_node", "--params-file", str(PARAMS_FILE), "-p", f"model_dir:={bundle}")


@pytest.fixture
def robot(ros_context, nav_node):
    robot = KinematicRobot(ros_context)
    # The latched status proves the node is up and discovered; then its goal subscription must be matched.
    robot.wait_for_status("idle", 20.0, nav_node)
    robot.wait_for(lambda: robot.goal_pub.get_subscription_count() > 0, 10.0, "goal subscription", nav_node)
    yield robot
    robot.close()


def assert_twists_bounded(twists: list[tuple[float, float, float]]) -> None:
    assert twists, "no velocity commands received"
    previous = (0.0, 0.0)
    for _, linear, angular in twists:
        assert math.isfinite(linear) and math.isfinite(angular)
        assert abs(linear) <= MAX_LINEAR + 1e-6 and abs(angular) <= MAX_ANGULAR + 1e-6
        # Speeding up is limited per period; slowing down may be immediate.
        for value, before, accel in ((linear, previous[0], MAX_LINEAR_ACCEL), (angular, previous[1], MAX_ANGULAR_ACCEL)):
            if abs(value) > abs(before) and value * before >= 0:
                assert abs(value) - abs(before) <= accel * PERIOD + 1e-6, (value, before)
        previous = (linear, angular)


def test_drives_to_the_goal_within_limits_and_stops_there(robot: KinematicRobot, nav_node) -> None:
    start = time.monotonic()
    goal = (1.2, 0.6)
    robot.send_goal(*goal)
    robot.wait_for_status("navigating", 5.0, nav_node)
    reached_at = robot.wait_for_status("reached", 25.0, nav_node)
    time.sleep(3 * PERIOD)

    assert_twists_bounded(robot.twists_since(start))
    assert any(abs(v) > 0.2 for _, v, _ in robot.twists_since(start)), "never drove at speed"
    after = robot.twists_since(reached_at)
    assert len(after) >= 2 and all(v == 0.0 and w == 0.0 for _, v, w in after)
    with robot.lock:
        distance = math.hypot(robot.x - goal[0], robot.y - goal[1])
    assert distance <= 0.36 + 0.06, f"stopped {distance:.2f} m from the goal"
    assert robot.status() == "reached"  # and it stays there
    assert nav_node.alive()


def test_stale_image_or_odometry_stops_within_timeout_plus_one_period(robot: KinematicRobot, nav_node) -> None:
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)

    for stream in ("publish_images", "publish_odom"):
        setattr(robot, stream, False)
        time.sleep(0.06)  # let a publish in progress finish
        last_sent = robot.last_image_sent if stream == "publish_images" else robot.last_odom_sent
        robot.wait_for(lambda: any(v == 0.0 and w == 0.0 for _, v, w in robot.twists_since(last_sent)),
                       TIMEOUT + PERIOD + 2.0, f"zero velocity after stopping {stream}", nav_node)
        first_zero = next(t for t, v, w in robot.twists_since(last_sent) if v == 0.0 and w == 0.0)
        assert first_zero - last_sent <= TIMEOUT + PERIOD + SLACK, f"{stream}: stopped after {first_zero - last_sent:.2f} s"
        stale = "stopped: image older" if stream == "publish_images" else "stopped: odometry older"
        robot.wait_for_status(stale, 2.0, nav_node)
        time.sleep(0.3)
        assert all(v == 0.0 and w == 0.0 for _, v, w in robot.twists_since(first_zero))

        setattr(robot, stream, True)
        robot.wait_for_status("navigating", 3.0, nav_node)
        robot.wait_for_motion(3.0, nav_node)


def expect_stop_then_recover(robot: KinematicRobot, node, status_prefix: str, break_input, restore_input) -> None:
    """Break an input: the status says why and every command is zero; restore it: driving again."""
    break_input()
    stopped_at = robot.wait_for_status(status_prefix, 3.0, node)
    time.sleep(3 * PERIOD)
    assert all(v == 0.0 and w == 0.0 for _, v, w in robot.twists_since(stopped_at)), status_prefix
    assert node.alive()
    restore_input()
    robot.wait_for_status("navigating", 3.0, node)
    robot.wait_for_motion(3.0, node)


def test_invalid_inputs_stop_the_robot_and_it_recovers(robot: KinematicRobot, nav_node) -> None:
    start = time.monotonic()
    good_image = robot.image_msg
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)

    def set_image(msg):
        return lambda: setattr(robot, "image_msg", msg)

    expect_stop_then_recover(robot, nav_node, "stopped: invalid image: unsupported encoding 'yuv422'",
                             set_image(rgb8_image(encoding="yuv422")), set_image(good_image))
    expect_stop_then_recover(robot, nav_node, "stopped: invalid image: buffer has",
                             set_image(rgb8_image(data=bytes(64 * 64 * 3 - 7))), set_image(good_image))
    expect_stop_then_recover(robot, nav_node, "stopped: invalid odometry: position is not finite",
                             lambda: setattr(robot, "odom_fault", nan_position),
                             lambda: setattr(robot, "odom_fault", None))
    # A goal in a frame nothing connects to the odometry frame is refused; the robot drives on.
    robot.send_goal(50.0, 0.0, frame_id="map")
    time.sleep(1.0)
    assert robot.status() == "navigating"
    assert "goal rejected: " in nav_node.output() and "'map'" in nav_node.output()
    # Other accepted encodings of other sizes drive as well (converted and resized by the node).
    robot.image_msg = rgb8_image(width=160, height=120, encoding="bgr8")
    time.sleep(0.5)
    assert robot.status() == "navigating"
    assert_twists_bounded(robot.twists_since(start))
    output = nav_node.output()
    assert output.count("unsupported encoding") == 1, "a cause is logged once, not every frame"
    assert "Traceback" not in output


def nan_position(msg) -> None:
    msg.pose.pose.position.x = math.nan


def test_shutdown_publishes_zero_velocity(robot: KinematicRobot, nav_node) -> None:
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)
    assert nav_node.stop() == 0
    time.sleep(0.2)
    with robot.lock:
        last = robot.twists[-1]
    assert last[1:] == (0.0, 0.0)


def test_fast_large_camera_keeps_no_queue(ros_context, start_node, bundle: Path) -> None:
    """A 100 Hz 640x480 camera: the node uses the newest frame and its memory stays flat."""
    node = start_node("recore_nav.nav_node", "--params-file", str(PARAMS_FILE), "-p", f"model_dir:={bundle}")
    robot = KinematicRobot(ros_context, camera_hz=100.0, image_msg=rgb8_image(width=640, height=480))
    try:
        robot.wait_for_status("idle", 20.0, node)
        robot.wait_for(lambda: robot.goal_pub.get_subscription_count() > 0, 10.0, "goal subscription", node)
        robot.send_goal(50.0, 0.0)
        robot.wait_for_status("navigating", 5.0, node)
        time.sleep(1.0)
        rss_before = resident_memory_kb(node.pid)
        start = time.monotonic()
        time.sleep(3.0)
        rss_after = resident_memory_kb(node.pid)
        assert robot.status() == "navigating"
        # Queued 640x480 frames would be ~0.9 MB each, ~270 MB over 3 s at 100 Hz.
        assert rss_after - rss_before < 30_000, f"memory grew by {rss_after - rss_before} kB"
        assert len(robot.twists_since(start)) >= 15  # commands keep flowing at the control rate
    finally:
        robot.close()


def resident_memory_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_bad_bundle_stops_the_node_at_start_with_one_line(start_node, bundle: Path) -> None:
    onnx_path = bundle / "policy.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    node = start_node("recore_nav.nav_node", "--params-file", str(PARAMS_FILE), "-p", f"model_dir:={bundle}")
    assert node.wait(timeout=20.0) == 1
    output = node.output()
    assert "policy.onnx sha256" in output and "does not match" in output
    assert "Traceback" not in output


def test_the_monitor_keeps_the_robot_off_a_wall_and_lets_it_turn_away(robot: KinematicRobot, nav_node) -> None:
    wall_x = 1.5
    robot.wall_x = wall_x
    robot.send_goal(50.0, 0.0)                       # straight through the wall
    robot.wait_for_status("slowed: obstacle", 10.0, nav_node)
    stopped_at = robot.wait_for_status("stopped: obstacle", 5.0, nav_node)
    with robot.lock:
        gap = wall_x - robot.x - ROBOT_RADIUS
    assert 0.05 < gap < 0.4, f"stopped {gap:.2f} m from the wall"
    # The policy keeps pushing at the wall: the robot turns away from it and slides along it on
    # arcs the monitor finds clear, but never touches it.
    time.sleep(3.0)
    assert any(w != 0.0 for _, _, w in robot.twists_since(stopped_at)), "did not turn away"

    robot.send_goal(0.0, 3.0)                        # behind and to the left: turn, then drive away
    robot.wait_for(lambda: robot.y > 0.5, 20.0, "driving away from the wall", nav_node)
    with robot.lock:
        statuses = [status for _, status in robot.statuses]
        assert robot.max_x + ROBOT_RADIUS < wall_x, f"touched the wall (x up to {robot.max_x:.2f})"
    assert {"slowed", "stopped"} <= {status.split(":")[0] for status in statuses}
    assert_twists_bounded(robot.twists_since(0.0))
    output = nav_node.output()
    assert output.count("status: stopped: obstacle") == 1, "the monitor's stops are logged once per cause"
    assert "Traceback" not in output


def test_stale_missing_or_malformed_depth_stops_the_robot(robot: KinematicRobot, nav_node) -> None:
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)

    robot.publish_depth = False
    time.sleep(0.06)  # let a publish in progress finish
    last_sent = robot.last_depth_sent
    robot.wait_for(lambda: any(v == 0.0 and w == 0.0 for _, v, w in robot.twists_since(last_sent)),
                   TIMEOUT + PERIOD + 2.0, "zero velocity after the depth stopped", nav_node)
    first_zero = next(t for t, v, w in robot.twists_since(last_sent) if v == 0.0 and w == 0.0)
    assert first_zero - last_sent <= TIMEOUT + PERIOD + SLACK
    robot.wait_for_status("stopped: safety input stale (older than 0.5 s)", 2.0, nav_node)
    robot.publish_depth = True
    robot.wait_for_status("navigating", 3.0, nav_node)

    def send_instead(msg):
        return lambda: setattr(robot, "depth_override", msg)

    floor = depth_image(0.0, 0.0, 0.0, None)
    expect_stop_then_recover(robot, nav_node, "stopped: invalid safety input: unsupported depth encoding 'rgb8'",
                             send_instead(rgb8_image()), send_instead(None))
    truncated = depth_msg(floor)
    truncated.data = bytes(truncated.data)[:-4]
    expect_stop_then_recover(robot, nav_node, "stopped: invalid safety input: buffer has",
                             send_instead(truncated), send_instead(None))
    # Millimetres in 16UC1 (0: no return) are depth as well: a wall 0.3 m ahead stops the robot.
    wall = np.nan_to_num(np.minimum(floor, 0.3) * 1000.0).astype(np.uint16)
    millimetres = depth_msg(floor, encoding="16UC1")
    millimetres.step, millimetres.data = 64 * 2, wall.tobytes()
    robot.depth_override = millimetres
    robot.wait_for_status("stopped: obstacle", 3.0, nav_node)
    robot.depth_override = None
    robot.wait_for_status("navigating", 3.0, nav_node)


def test_depth_without_usable_camera_info_stops_forward_motion(ros_context, start_node, bundle: Path) -> None:
    """Depth is placed in the world with the camera's own intrinsics: before the first CameraInfo,
    and while it is malformed, the monitor has no usable input and the robot does not drive."""
    node = start_node("recore_nav.nav_node", "--params-file", str(PARAMS_FILE), "-p", f"model_dir:={bundle}")
    robot = KinematicRobot(ros_context)
    robot.camera_info = None
    try:
        robot.wait_for_status("idle", 20.0, node)
        robot.wait_for(lambda: robot.goal_pub.get_subscription_count() > 0, 10.0, "goal subscription", node)
        robot.send_goal(50.0, 0.0)
        robot.wait_for_status("stopped: invalid safety input: no camera_info on /camera/depth/camera_info yet",
                              10.0, node)
        time.sleep(3 * PERIOD)
        assert robot.max_x < 0.01, "drove forward without the depth camera's intrinsics"
        robot.camera_info = camera_info_msg()
        robot.wait_for_motion(5.0, node)

        uncalibrated = camera_info_msg()
        uncalibrated.k = [0.0] * 9                     # what an uncalibrated camera driver sends
        expect_stop_then_recover(robot, node, "stopped: invalid safety input: invalid camera_info: focal lengths 0, 0",
                                 lambda: setattr(robot, "camera_info", uncalibrated),
                                 lambda: setattr(robot, "camera_info", camera_info_msg()))
        assert "Traceback" not in node.output()
    finally:
        robot.close()


ODOMETRY_FAULTS = {
    "position is not finite": nan_position,
    "orientation is not finite": lambda msg: setattr(msg.pose.pose.orientation, "w", math.inf),
    "orientation is not a unit quaternion (norm 0)": lambda msg: setattr(msg.pose.pose.orientation, "w", 0.0),
    "twist is not finite": lambda msg: setattr(msg.twist.twist.angular, "z", math.nan),
}


def test_every_kind_of_bad_odometry_stops_the_robot_and_is_logged_once(robot: KinematicRobot, nav_node) -> None:
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)
    for reason, fault in ODOMETRY_FAULTS.items():
        expect_stop_then_recover(robot, nav_node, f"stopped: invalid odometry: {reason}",
                                 lambda fault=fault: setattr(robot, "odom_fault", fault),
                                 lambda: setattr(robot, "odom_fault", None))
    output = nav_node.output()
    for reason in ODOMETRY_FAULTS:
        assert output.count(reason) == 1, f"{reason!r} logged {output.count(reason)} times"


def compressed_image(fmt: str, width: int = 64, height: int = 64):
    import cv2
    from sensor_msgs.msg import CompressedImage

    pixels = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(f".{fmt}", pixels)
    assert ok
    return CompressedImage(format=f"bgr8; {fmt} compressed bgr8", data=encoded.tobytes())


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_images_drive_the_robot(start_node, bundle: Path, ros_context, fmt: str) -> None:
    """image_transport:=compressed: jpeg and png on camera/image_raw/compressed, decoded by OpenCV."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage

    node = start_node("recore_nav.nav_node", "--params-file", str(PARAMS_FILE), "-p", f"model_dir:={bundle}",
                      "-p", "image_transport:=compressed")
    robot = KinematicRobot(ros_context, image_msg=compressed_image(fmt, 160, 120))
    robot.image_pub = robot.node.create_publisher(CompressedImage, "camera/image_raw/compressed",
                                                  qos_profile_sensor_data)
    try:
        robot.wait_for_status("idle", 20.0, node)
        robot.wait_for(lambda: robot.goal_pub.get_subscription_count() > 0, 10.0, "goal subscription", node)
        robot.send_goal(50.0, 0.0)
        robot.wait_for_status("navigating", 10.0, node)
        robot.wait_for_motion(5.0, node)
        robot.image_msg = CompressedImage(format="jpeg", data=b"not a jpeg")
        robot.wait_for_status("stopped: invalid image: cannot decode", 5.0, node)
    finally:
        robot.close()
