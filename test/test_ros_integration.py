"""What ROS users drive robots with, over real DDS: `ros2 launch` of both launch files and their
end, /clock and use_sim_time, goals in other frames through TF, and Nav2's NavigateToPose action.

launch, launch_ros, ros2cli, tf2_msgs and nav2_msgs have no PyPI wheels: `bash scripts/bootstrap.sh
test` builds them from ../shared/ros2-from-source with this package (scripts/ros_from_source.py).
Where they are missing (a user's clone has no ../shared) these tests skip, saying so.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from test_nav_node import KinematicRobot, bundle, nav_node, robot  # noqa: F401 - fixtures shared

HOW = "run the tests with `bash scripts/bootstrap.sh test`, which builds them from ../shared/ros2-from-source"


def missing(*modules: str, ros2: bool = False) -> str | None:
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if ros2 and shutil.which("ros2") is None:
        absent.append("the ros2 command")
    return f"{', '.join(absent)} not installed: {HOW}" if absent else None


needs_launch = pytest.mark.skipif(bool(missing("launch_ros", "ament_index_python", ros2=True)),
                                  reason=str(missing("launch_ros", "ament_index_python", ros2=True)))
needs_tf = pytest.mark.skipif(bool(missing("tf2_msgs")), reason=str(missing("tf2_msgs")))
needs_nav2 = pytest.mark.skipif(bool(missing("nav2_msgs")), reason=str(missing("nav2_msgs")))


def installed_package() -> bool:
    from ament_index_python.packages import (
        PackageNotFoundError,
        get_package_share_directory,
    )
    try:
        get_package_share_directory("recore_nav")
        return True
    except PackageNotFoundError:
        return False


class Launch:
    """`ros2 launch ...` in its own process group, output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.process = subprocess.Popen(["ros2", "launch", "recore_nav", *args], env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=REPO_ROOT, start_new_session=True)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"ros2 launch did not end within {timeout} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            import os
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def launch(ros_env, tmp_path: Path):
    if not installed_package():
        pytest.skip(f"recore_nav is not in the ament index (not built by colcon): {HOW}")
    started: list[Launch] = []

    def start(*args: str) -> Launch:
        started.append(Launch(list(args), ros_env.env, tmp_path / f"launch_{len(started)}.log"))
        return started[-1]

    yield start
    for process in started:
        process.kill()


@needs_launch
def test_launch_arguments_are_described(launch) -> None:
    for name, expected in (("sim.launch.py", ("namespace", "use_sim_time", "log_level", "params_file", "model_dir",
                                              "split", "seed", "episodes")),
                           ("robot.launch.py", ("namespace", "use_sim_time", "log_level", "params_file",
                                                "model_dir", "image_topic", "compressed_image_topic"))):
        process = launch(name, "--show-args")
        assert process.wait(60) == 0, process.output()
        text = process.output()
        for argument in expected:
            assert f"'{argument}':" in text, f"{name} lacks {argument}:\n{text}"
        assert "no description given" not in text, text


@needs_launch
def test_sim_launch_runs_its_episodes_on_sim_time_and_ends(launch, ros_context, tmp_path: Path) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    params = yaml.safe_load((REPO_ROOT / "config" / "sim.yaml").read_text())
    params["/**/sim_bridge"]["ros__parameters"].update(max_steps=15)
    params_file = tmp_path / "sim_short.yaml"
    params_file.write_text(yaml.safe_dump(params))

    node = Node("launch_listener", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    clock: list[float] = []
    node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec + m.clock.nanosec * 1e-9), 10)
    process = launch("sim.launch.py", "episodes:=2", "namespace:=sim1", "seed:=5", "split:=ood",
                     f"params_file:={params_file}", "log_level:=info")
    deadline = time.monotonic() + 180
    while process.process.poll() is None and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    code = process.wait(1)
    output = process.output()
    node.destroy_node()
    assert code == 0, output[-4000:]
    assert "2 episodes: success" in output
    assert "escalating to 'SIGTERM'" not in output and "Traceback" not in output, output[-4000:]
    # Simulated time: 0.1 s per step from 0, at most 2 x 15 steps (an episode ends early on success).
    assert clock and clock == sorted(clock) and 0.0 < clock[-1] <= 3.0 + 1e-6, clock[-5:]


@needs_launch
def test_robot_launch_remaps_namespaces_and_stops_on_sigint(launch, ros_context, bundle: Path) -> None:  # noqa: F811
    from rclpy.node import Node

    process = launch("robot.launch.py", "namespace:=r2", "image_topic:=/cam/rgb", f"model_dir:={bundle}",
                     "use_sim_time:=false")
    node = Node("launch_probe", context=ros_context)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (node.count_subscribers("/cam/rgb") and
                                               node.count_publishers("/r2/cmd_vel")):
        time.sleep(0.2)
    assert node.count_subscribers("/cam/rgb") == 1, process.output()
    assert node.count_subscribers("/r2/odom") == 1 and node.count_publishers("/r2/cmd_vel") == 1
    node.destroy_node()
    process.process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0, process.output()
    assert "escalating to 'SIGTERM'" not in process.output()


# TF goals and the action: the navigation node in its own process, the kinematic robot in the test.
def publish_map_to_odom(robot: KinematicRobot, x: float, y: float, yaw: float) -> None:  # noqa: F811
    """map -> odom on /tf at 20 Hz, stamped now, as a localisation node publishes it."""
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    publisher = robot.node.create_publisher(TFMessage, "/tf", qos)

    def send() -> None:
        tf = TransformStamped()
        tf.header.stamp = robot.node.get_clock().now().to_msg()
        tf.header.frame_id, tf.child_frame_id = "map", "odom"
        tf.transform.translation.x, tf.transform.translation.y = x, y
        tf.transform.rotation.z, tf.transform.rotation.w = math.sin(yaw / 2), math.cos(yaw / 2)
        publisher.publish(TFMessage(transforms=[tf]))

    robot.node.create_timer(0.05, send)


def send_stamped_goal(robot: KinematicRobot, x: float, y: float, frame_id: str) -> None:  # noqa: F811
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, robot.node.get_clock().now().to_msg()
    msg.pose.position.x, msg.pose.position.y = x, y
    msg.pose.orientation.w = 1.0
    robot.goal_pub.publish(msg)


@needs_tf
def test_goal_in_map_frame_is_transformed_and_unknown_frames_are_refused(robot: KinematicRobot,  # noqa: F811
                                                                           nav_node) -> None:  # noqa: F811
    # odom sits at (1, 2) in map, turned 90 degrees: map (1, 3.2) is odom (1.2, 0), straight ahead.
    publish_map_to_odom(robot, 1.0, 2.0, math.pi / 2)
    robot.send_goal(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)
    send_stamped_goal(robot, 3.0, 3.0, "nowhere")
    time.sleep(1.5)   # past goal_transform_timeout (0.5 s)
    assert robot.status() == "navigating", "a refused goal must not stop the goal being driven to"
    assert "goal rejected: no transform from 'nowhere' to 'odom'" in nav_node.output()
    send_stamped_goal(robot, 1.0, 3.2, "map")
    robot.wait_for_status("reached", 20.0, nav_node)
    assert robot.x == pytest.approx(1.2, abs=0.45) and abs(robot.y) < 0.3, (robot.x, robot.y)
    assert "in 'odom' from the topic (sent as (1.0, 3.2) in 'map')" in nav_node.output()


@needs_nav2
def test_navigate_to_pose_action_succeeds_cancels_and_preempts(robot: KinematicRobot,  # noqa: F811
                                                                nav_node) -> None:  # noqa: F811
    from action_msgs.msg import GoalStatus
    from nav2_msgs.action import NavigateToPose
    from rclpy.action import ActionClient

    client = ActionClient(robot.node, NavigateToPose, "navigate_to_pose")
    assert client.wait_for_server(timeout_sec=20.0), nav_node.output()
    feedback: list = []

    def send(x: float, y: float):
        goal = NavigateToPose.Goal()
        goal.pose.header.frame_id = "odom"
        goal.pose.pose.position.x, goal.pose.pose.position.y = x, y
        goal.pose.pose.orientation.w = 1.0
        future = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
        robot.wait_for(future.done, 10.0, "goal response", nav_node)
        handle = future.result()
        assert handle.accepted
        return handle, handle.get_result_async()

    # Success, with feedback on the way.
    _, result = send(1.0, 0.0)
    robot.wait_for(result.done, 30.0, "the first goal's result", nav_node)
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED and result.result().result.error_code == 0
    distances = [f.distance_remaining for f in feedback]
    assert distances and distances[0] > distances[-1] and feedback[-1].current_pose.header.frame_id == "odom"
    assert feedback[-1].navigation_time.sec + feedback[-1].navigation_time.nanosec > 0

    # Cancel: the robot stops and the goal ends cancelled.
    handle, result = send(50.0, 0.0)
    robot.wait_for_motion(5.0, nav_node)
    handle.cancel_goal_async()
    robot.wait_for(result.done, 10.0, "the cancelled goal's result", nav_node)
    assert result.result().status == GoalStatus.STATUS_CANCELED
    robot.wait_for_status("idle", 5.0, nav_node)

    # A newer goal preempts: the old one is aborted, the new one driven to; the topic preempts too.
    _, first = send(50.0, 0.0)
    _, second = send(0.0, 50.0)
    robot.wait_for(first.done, 10.0, "the preempted goal's result", nav_node)
    assert first.result().status == GoalStatus.STATUS_ABORTED
    assert "preempted" in first.result().result.error_msg
    assert not second.done()
    robot.send_goal(-50.0, 0.0)
    robot.wait_for(second.done, 10.0, "the goal preempted by the topic", nav_node)
    assert second.result().status == GoalStatus.STATUS_ABORTED
    client.destroy()


@needs_tf
def test_bridge_publishes_clock_tf_and_camera_info(start_node, ros_context) -> None:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import (
        DurabilityPolicy,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
    )
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    bridge = start_node("recore_nav.sim.bridge_node", "--params-file", str(REPO_ROOT / "config" / "sim.yaml"),
                        "-p", "use_sim_time:=true", "-p", "lockstep:=false", "-p", "real_time_factor:=3.0")
    node = Node("bridge_probe", context=ros_context)
    seen: dict[str, list] = {"tf": [], "tf_static": [], "info": [], "clock": [], "image": []}
    latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(TFMessage, "/tf", lambda m: seen["tf"].append(m), 100)
    node.create_subscription(TFMessage, "/tf_static", lambda m: seen["tf_static"].append(m), latched)
    node.create_subscription(CameraInfo, "camera/camera_info", lambda m: seen["info"].append(m), qos_profile_sensor_data)
    node.create_subscription(Image, "camera/image_raw", lambda m: seen["image"].append(m), qos_profile_sensor_data)
    node.create_subscription(Clock, "/clock", lambda m: seen["clock"].append(m.clock), 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (seen["tf_static"] and all(len(v) >= 3 for v in seen.values())):
        executor.spin_once(timeout_sec=0.05)
    assert all(seen.values()), ({k: len(v) for k, v in seen.items()}, bridge.output())
    static = seen["tf_static"][-1].transforms[0]
    assert (static.header.frame_id, static.child_frame_id) == ("base_link", "camera_link")
    assert static.transform.translation.z == pytest.approx(0.5)
    r = static.transform.rotation
    assert (r.x, r.y, r.z, r.w) == pytest.approx((-0.5, 0.5, -0.5, 0.5))
    odom = seen["tf"][-1].transforms[0]
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")
    info, image = seen["info"][-1], seen["image"][-1]
    assert image.header.frame_id == info.header.frame_id == "camera_link"
    assert info.k[0] == pytest.approx(32.0) and info.k[4] == pytest.approx(32.0)   # 64 px, 90 degrees
    # Stamps are simulated time: multiples of 0.1 s from 0, far from the wall clock's ~1.8e9 s.
    stamp = image.header.stamp.sec + image.header.stamp.nanosec * 1e-9
    assert stamp < 1e5 and abs(stamp * 10 - round(stamp * 10)) < 1e-6
    node.destroy_node()


def test_navigation_node_follows_sim_time(start_node, ros_context, bundle: Path) -> None:  # noqa: F811
    """use_sim_time: no control ticks (no cmd_vel) until /clock advances; then at its rate."""
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import Twist
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock

    nav = start_node("recore_nav.nav_node", "--params-file", str(REPO_ROOT / "config" / "robot.yaml"),
                     "-p", f"model_dir:={bundle}", "-p", "use_sim_time:=true")
    node = Node("clock_source", context=ros_context)
    twists: list[float] = []
    node.create_subscription(Twist, "cmd_vel", lambda m: twists.append(time.monotonic()), 50)
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def spin(seconds: float, clock_step: float | None = None) -> None:
        end, sim = time.monotonic() + seconds, 0.0
        while time.monotonic() < end:
            if clock_step is not None:
                sim += clock_step
                clock_pub.publish(Clock(clock=Time(sec=int(sim), nanosec=int((sim % 1) * 1e9))))
            executor.spin_once(timeout_sec=0.05)

    spin(4.0)   # discovery, start-up, and no clock
    assert node.count_publishers("cmd_vel") == 1, nav.output()
    assert not twists, "control ticks ran without /clock"
    spin(3.0, clock_step=0.05)   # /clock at about 0.05 s per 50 ms of wall time
    assert len(twists) >= 5, (len(twists), nav.output())
    node.destroy_node()
