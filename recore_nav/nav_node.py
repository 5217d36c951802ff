"""The navigation node: camera + odometry + goal in, velocity commands out, with a learned policy.

A thin ROS 2 shell around `NavigationController` (the decisions), `CollisionMonitor` (the last
word on every command) and `PolicyRuntime` (the policy). Callbacks only store the newest message;
one timer at the control rate converts the newest image and safety input, asks the controller for
a command and publishes it, so a fast camera never builds a queue and every command comes from
the freshest inputs.

  subscribes  camera/image_raw (sensor_msgs/Image, best effort, depth 1), odom (nav_msgs/Odometry),
              goal_pose (geometry_msgs/PoseStamped, in the odometry frame), and with the collision
              monitor camera/depth (sensor_msgs/Image 32FC1 or 16UC1) or scan (sensor_msgs/LaserScan)
  publishes   cmd_vel (geometry_msgs/Twist, every control period), navigation_status
              (std_msgs/String on change, latched: idle | navigating | reached | stopped: <reason>, and
              where the collision monitor changes a command, slowed: / steered: / stopped: obstacle <m>)

Topic names are fixed and relative; remap them for a robot (`-r cmd_vel:=/base/cmd_vel`).
Run: python -m recore_nav.nav_node --ros-args --params-file config/robot.yaml
"""

from __future__ import annotations

import faulthandler
import math
import signal
import sys
import time

import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.duration import Duration
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, LaserScan
from std_msgs.msg import String

from recore_nav.bundle import BundleError
from recore_nav.collision_monitor import (ACTING as MONITOR_ACTING, CollisionMonitor, SafetyInputError,
                                          depth_image_metres, depth_obstacles, scan_obstacles, scan_ranges)
from recore_nav.image_conversion import ImageConversionError, image_msg_to_policy_rgb
from recore_nav.navigation_controller import STOPPED, NavigationController, OdometryReading, status_cause
from recore_nav.node_parameters import (NODE_NAME, PARAMETERS, check_parameters, controller_config, depth_camera,
                                        monitor_config, scanner_pose)
from recore_nav.policy import PolicyRuntime
from recore_nav.resources import default_model_dir
from recore_nav.ros_interface import (CMD_VEL_QOS, CMD_VEL_TOPIC, DEPTH_QOS, DEPTH_TOPIC, GOAL_QOS, GOAL_TOPIC,
                                      IMAGE_QOS, IMAGE_TOPIC, ODOM_QOS, ODOM_TOPIC, SCAN_QOS, SCAN_TOPIC,
                                      STATUS_QOS, STATUS_TOPIC, use_large_shm_transport)

# The same log cause is logged again at most this often (seconds).
WARNING_REPEAT_PERIOD = 10.0


class NavigationNode(Node):
    """Drives to the newest goal with the policy bundle in `model_dir`; zero velocity when in doubt."""

    def __init__(self) -> None:
        super().__init__(NODE_NAME)
        for name, (default, description) in PARAMETERS.items():
            # Read once at start-up, hence read-only: a change at run time would not take effect.
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        check_parameters(p)

        model_dir = p["model_dir"] or str(default_model_dir())
        self.runtime = PolicyRuntime(model_dir, providers=p["providers"], logger=self.get_logger(),
                                     cpu_threads=p["cpu_threads"])
        self.config = controller_config(p, self.runtime.spec)
        self.monitor = CollisionMonitor(monitor_config(p)) if p["collision_monitor"] else None
        self.controller = NavigationController(self.runtime, self.config, self.monitor)
        self.camera, self.scanner = depth_camera(p), scanner_pose(p)

        self._image_msg: Image | None = None  # newest frame not yet converted
        self._image_received = 0.0
        self._safety_msg: Image | LaserScan | None = None  # newest safety input not yet converted
        self._safety_received = 0.0
        self._status = ""
        self._last_log: dict[str, float] = {}

        self.cmd_vel_pub = self.create_publisher(Twist, CMD_VEL_TOPIC, CMD_VEL_QOS)
        self.status_pub = self.create_publisher(String, STATUS_TOPIC, STATUS_QOS)
        self.create_subscription(Image, IMAGE_TOPIC, self._on_image, IMAGE_QOS)
        self.create_subscription(Odometry, ODOM_TOPIC, self._on_odom, ODOM_QOS)
        self.create_subscription(PoseStamped, GOAL_TOPIC, self._on_goal, GOAL_QOS)
        safety = "off"
        if self.monitor is not None and p["safety_input"] == "depth":
            self.create_subscription(Image, DEPTH_TOPIC, self._on_safety_input, DEPTH_QOS)
            safety = f"depth on {self.resolve_topic_name(DEPTH_TOPIC)}"
        elif self.monitor is not None:
            self.create_subscription(LaserScan, SCAN_TOPIC, self._on_safety_input, SCAN_QOS)
            safety = f"scan on {self.resolve_topic_name(SCAN_TOPIC)}"
        self.create_timer(self.config.control_period, self._on_control_tick)
        self._publish_status("idle")
        self.get_logger().info(
            f"navigating with {model_dir} at {p['control_rate_hz']:g} Hz, limits "
            f"{self.config.max_linear_speed:g} m/s, {self.config.max_angular_speed:g} rad/s, "
            f"collision monitor: {safety}")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Callbacks store; the control tick decides --------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._image_msg, self._image_received = msg, self._now()

    def _on_safety_input(self, msg: Image | LaserScan) -> None:
        self._safety_msg, self._safety_received = msg, self._now()

    def _on_odom(self, msg: Odometry) -> None:
        pose, twist = msg.pose.pose, msg.twist.twist
        p, q = pose.position, pose.orientation
        reading = OdometryReading(msg.header.frame_id, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w),
                                  (twist.linear.x, twist.linear.y, twist.linear.z),
                                  (twist.angular.x, twist.angular.y, twist.angular.z))
        error = self.controller.set_odometry(reading, self._now())
        if error:
            # Under the cause of the status it leads to, so the two are logged once together.
            self._log_once(status_cause(f"{STOPPED}: invalid odometry: {error}"), f"invalid odometry: {error}")

    def _on_goal(self, msg: PoseStamped) -> None:
        position = msg.pose.position
        reason = self.controller.set_goal(position.x, position.y, msg.header.frame_id)
        if reason:
            self.get_logger().warning(f"goal rejected: {reason}")
        else:
            self.get_logger().info(f"new goal ({position.x:.2f}, {position.y:.2f}) in {msg.header.frame_id!r}")

    def _on_control_tick(self) -> None:
        try:
            if self._image_msg is not None:
                msg, self._image_msg = self._image_msg, None
                try:
                    rgb = image_msg_to_policy_rgb(msg, self.runtime.spec.image_height, self.runtime.spec.image_width)
                    self.controller.set_image(rgb, self._image_received)
                except ImageConversionError as err:
                    self.controller.set_image_error(str(err), self._image_received)
            if self._safety_msg is not None:
                msg, self._safety_msg = self._safety_msg, None
                self._update_monitor(msg)
            command = self.controller.tick(self._now())
        except Exception as err:  # noqa: BLE001 - one failed step must stop the robot, not kill the node
            first_line = (str(err).strip().splitlines() or [""])[0]
            command = self.controller.stop(f"{STOPPED}: error: {type(err).__name__}: {first_line}")
        twist = Twist()
        twist.linear.x, twist.angular.z = command.linear, command.angular
        self.cmd_vel_pub.publish(twist)
        if command.status != self._status:
            self._publish_status(command.status)

    def _update_monitor(self, msg: Image | LaserScan) -> None:
        """The newest safety input as obstacles for the monitor, or the reason it is unusable."""
        assert self.monitor is not None
        try:
            if isinstance(msg, Image):
                obstacles = depth_obstacles(depth_image_metres(msg), self.camera, self.monitor.config)
            else:
                obstacles = scan_obstacles(*scan_ranges(msg), self.scanner)
            self.monitor.set_obstacles(obstacles, self._safety_received, self.controller.pose)
        except SafetyInputError as err:
            self.monitor.set_input_error(str(err), self._safety_received)

    # Output ---------------------------------------------------------------------------------------
    def _publish_status(self, status: str) -> None:
        self._status = status
        self.status_pub.publish(String(data=status))
        # The monitor acting is normal operation (and its distance changes every period): info, and
        # once per cause like every other status; a stop for any other reason is a warning.
        warning = status.startswith(STOPPED) and not status.startswith(MONITOR_ACTING)
        self._log_once(status_cause(status), status if warning else f"status: {status}", warning)

    def _log_once(self, cause: str, message: str, warning: bool = True) -> None:
        """Log once per cause, again only after WARNING_REPEAT_PERIOD."""
        now = time.monotonic()
        if now - self._last_log.get(cause, -math.inf) >= WARNING_REPEAT_PERIOD:
            self._last_log[cause] = now
            # Two call sites: rclpy refuses one call site logging at two severities.
            if warning:
                self.get_logger().warning(message)
            else:
                self.get_logger().info(message)

    def publish_stop(self) -> None:
        """Publish zero velocity and wait briefly for it to be delivered."""
        self.cmd_vel_pub.publish(Twist())
        self.cmd_vel_pub.wait_for_all_acked(Duration(seconds=0.5))

    def destroy_node(self) -> None:
        if self.context.ok():
            self.publish_stop()
        super().destroy_node()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(args: list[str] | None = None) -> int:
    dds_profile = use_large_shm_transport()
    # Our own SIGINT/SIGTERM handling: rclpy's handler shuts the context down before we could
    # publish the last zero Twist; ours unwinds `spin` and leaves the context up for it.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGINT explicitly too: a process started in the background of a non-interactive shell (CI,
    # nohup) inherits SIGINT ignored, and Python then installs no handler of its own for it.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    # `kill -USR1 <pid>` prints every thread's stack, even while blocked inside rclpy's C code:
    # how to see where a node that does not stop is stuck (the test harness does it on a hang).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        node = NavigationNode()
    except (BundleError, ValueError, InvalidParameterTypeException, OSError) as err:
        # A bad bundle or parameter file: one line saying why, and no node driving blind.
        rclpy.logging.get_logger(NODE_NAME).fatal(" ".join(str(err).split()))
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # stopped while loading
        rclpy.try_shutdown()
        return 0
    if dds_profile:
        node.get_logger().info(f"Fast DDS profile {dds_profile}")
    try:
        # Single-threaded on purpose: callbacks only store messages and the timer does all the work
        # (a policy step is about a millisecond), so nothing runs concurrently and nothing needs a lock.
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()  # publishes zero velocity while the context is still up
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
