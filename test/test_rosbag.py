"""Robot logs: the recorder over real DDS, the bag importer, and the whole path from the simulated robot
to a dataset.

The recorder runs in its own process (`python -m recore_nav.recorder`), as on a robot; this process
publishes to it as a robot's drivers would. Bags for the importer's own tests are written with
`rosbags` (`bag_fixtures.py`), so their every value is known.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bag_fixtures import SPEED, SyntheticBag, pose_at, write_bag
from conftest import REPO_ROOT
from training.data.datasets import OfflineDataset, load_dataset
from training.data.rosbag_import import BagError, ImportOptions, import_bags

PARAMS = str(REPO_ROOT / "config" / "sim.yaml")


# ---- the importer --------------------------------------------------------------------------------
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_import_aligns_to_the_control_rate_and_splits_episodes(tmp_path: Path, storage: str):
    # 6 s at 30 Hz images, 20 Hz odometry, 10 Hz commands; a new goal at 2 s; everything silent 3.5-5 s.
    spec = SyntheticBag(goals=[(0.0, 3.0, 1.0), (2.0, -1.0, 2.0)], gaps=[(3.5, 5.0)], depth=True)
    write_bag(tmp_path / "bag", spec, storage)
    arrays, stats = import_bags([tmp_path / "bag"], ImportOptions(image_size=16, depth=True), progress=False)
    dataset = OfflineDataset.from_arrays(arrays)
    # Ticks at 0.0..1.9 (goal 1), 2.0..3.4 (goal 2, up to the gap), 5.0..6.0 (after the gap).
    np.testing.assert_array_equal(dataset.ends - dataset.starts + 1, [20, 15, 11])
    tick_times = np.concatenate([np.arange(20) * 0.1, 2.0 + np.arange(15) * 0.1, 5.0 + np.arange(11) * 0.1])
    expected_pose = np.array([pose_at(t) for t in tick_times])
    expected_pose[:, 2] = (expected_pose[:, 2] + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(dataset.observations, expected_pose, atol=1e-5)
    np.testing.assert_array_equal(dataset.robot_pose, dataset.observations)
    np.testing.assert_allclose(dataset.actions, np.tile([SPEED[0] / 0.5, SPEED[1] / 1.5], (46, 1)), rtol=1e-6)
    # The newest image at each tick: image k (taken at k/30 s) has pixel value k.
    np.testing.assert_array_equal(dataset.rgb[:, 0, 0, 0], np.round(tick_times * 30).astype(int) % 256)
    assert dataset.rgb.shape == (46, 16, 16, 3)
    np.testing.assert_allclose(dataset.depth[:, 5, 5, 0], 1.0 + np.round(tick_times * 30) / 100, rtol=1e-3)
    x, y, yaw = expected_pose[0]
    np.testing.assert_allclose(dataset.goal[0], [math.hypot(3 - x, 1 - y), math.cos(math.atan2(1, 3)),
                                                 math.sin(math.atan2(1, 3))], rtol=1e-5)
    assert np.allclose(dataset.goal[20:, 0], np.hypot(-1 - expected_pose[20:, 0], 2 - expected_pose[20:, 1]))
    assert stats["messages"] > 0 and stats["messages_per_second"] > 0


def test_stale_commands_count_as_zero_and_new_namespaces_are_found(tmp_path: Path):
    spec = SyntheticBag(duration=3.0, command_pauses=[(1.0, 2.5)], namespace="/robot1", goals=[])
    write_bag(tmp_path / "bag", spec)
    arrays, _ = import_bags([tmp_path / "bag"], ImportOptions(image_size=8), progress=False)
    moving = np.abs(arrays["actions"]).sum(axis=1) > 0
    # The last command before the pause (0.9 s) drives ticks up to 1.4 s (0.5 s old there); the next
    # one (2.5 s) drives from the tick at 2.5 s: the ticks 1.5-2.4 s stand still.
    np.testing.assert_array_equal(np.flatnonzero(~moving), np.arange(15, 25))
    assert np.all(np.isnan(arrays["goal"]))          # no goal topic: no goal


def test_topics_are_chosen_by_name_when_ambiguous(tmp_path: Path):
    write_bag(tmp_path / "a", SyntheticBag(duration=1.0, namespace="/robot1"))
    write_bag(tmp_path / "b", SyntheticBag(duration=1.0, namespace="/robot2"))
    both = tmp_path / "both"
    both.mkdir()
    # Two robots' recordings side by side: one bag with both namespaces is written by merging.
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from bag_fixtures import TYPESTORE
    with Writer(both / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for name in ("a", "b"):
            with Reader(tmp_path / name) as reader:
                conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE) for c in reader.connections}
                for conn, stamp, raw in reader.messages():
                    writer.write(conns[conn.id], stamp, raw)
    with pytest.raises(BagError, match="all match camera/image_raw; name one with --image-topic"):
        import_bags([both / "bag"], ImportOptions(image_size=8), progress=False)
    topics = {role: f"/robot2/{name}" for role, name in
              [("image", "camera/image_raw"), ("odom", "odom"), ("cmd_vel", "cmd_vel"), ("goal", "goal_pose")]}
    arrays, _ = import_bags([both / "bag"], ImportOptions(image_size=8, topics=topics), progress=False)
    assert len(arrays["terminals"]) == 11


def _import_error(paths: list[Path], **options) -> str:
    with pytest.raises(BagError) as err:
        import_bags(paths, ImportOptions(image_size=8, **options), progress=False)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_bad_bags_are_refused_with_their_reason(tmp_path: Path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"\x89MCAP0\r\n" + bytes(range(256)) * 4)
    assert _import_error([garbage]).startswith(f"{garbage}: unreadable bag")
    assert "missing" in _import_error([tmp_path / "absent"])

    good = tmp_path / "good"
    write_bag(good, SyntheticBag(duration=2.0))
    truncated = tmp_path / "truncated.mcap"
    data = (good / "good.mcap").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    assert _import_error([truncated]).startswith(f"{truncated}: unreadable bag")

    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from bag_fixtures import TYPESTORE
    empty = tmp_path / "empty"
    with Writer(empty, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=TYPESTORE)
    assert _import_error([empty]) == f"{empty}: the bag holds no messages"

    no_camera = tmp_path / "no_camera"
    with Writer(no_camera, version=9, storage_plugin=StoragePlugin.MCAP) as writer, Reader(good) as reader:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=TYPESTORE)
                 for c in reader.connections if "image" not in c.topic}
        for conn, stamp, raw in reader.messages():
            if conn.id in conns:
                writer.write(conns[conn.id], stamp, raw)
    message = _import_error([no_camera])
    assert message.startswith(f"{no_camera}: no camera/image_raw topic (the bag has: /cmd_vel, /goal_pose, /odom)")
    assert "no camera/depth topic" in _import_error([good], depth=True)

    wrong_type = tmp_path / "wrong_type"
    with Writer(wrong_type, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/odom", "geometry_msgs/msg/Twist", typestore=TYPESTORE)
        writer.write(conn, 1, TYPESTORE.serialize_cdr(TYPESTORE.types["geometry_msgs/msg/Twist"](
            linear=TYPESTORE.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
            angular=TYPESTORE.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)), "geometry_msgs/msg/Twist"))
    assert _import_error([wrong_type]) == (f"{wrong_type}: /odom carries geometry_msgs/msg/Twist, "
                                           "expected nav_msgs/msg/Odometry")

    bad_image = tmp_path / "bad_image"
    write_bag(bad_image, SyntheticBag(duration=1.0, encoding="32FC1"))
    assert "unsupported encoding '32FC1'" in _import_error([bad_image])


def test_import_command_writes_a_dataset_and_reports_its_speed(tmp_path: Path):
    write_bag(tmp_path / "bag", SyntheticBag(duration=3.0))
    out = tmp_path / "d.npz"
    result = subprocess.run([sys.executable, "-m", "training.data.rosbag_import", str(tmp_path / "bag"),
                             "--out", str(out), "--image-size", "16"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "messages/s" in result.stdout and "1 trajectories, 31 steps" in result.stdout
    assert load_dataset(out).rgb.shape == (31, 16, 16, 3)
    refused = subprocess.run([sys.executable, "-m", "training.data.rosbag_import", str(tmp_path / "none"),
                              "--out", str(tmp_path / "x.npz")], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "missing" in refused.stderr


# ---- the recorder over DDS -----------------------------------------------------------------------
def _wait_for_log(node, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in node.output():
        assert node.alive() and time.monotonic() < deadline, f"no {text!r} in time:\n{node.output()}"
        time.sleep(0.1)


def _published_messages():
    """A few of every recorded type, each different, as rclpy messages."""
    from geometry_msgs.msg import PoseStamped, Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    images, odoms, commands, goals = [], [], [], []
    for k in range(12):
        image = Image(height=48 if k % 2 else 64, width=64, encoding="rgb8", step=64 * 3)
        image.header.stamp.sec, image.header.frame_id = k, "camera_link"
        image.data = np.random.default_rng(k).integers(0, 256, image.height * image.step, dtype=np.uint8).tobytes()
        images.append(image)
        odom = Odometry(child_frame_id="base_link")
        odom.header.frame_id = "odom"
        odom.pose.pose.position.x, odom.pose.pose.orientation.z, odom.pose.pose.orientation.w = 0.1 * k, 0.6, 0.8
        odom.pose.covariance[0] = float(k)
        odom.twist.twist.linear.x = 0.01 * k
        odoms.append(odom)
        command = Twist()
        command.linear.x, command.angular.z = 0.05 * k, -0.1 * k
        commands.append(command)
    for k in range(3):
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.x, goal.pose.position.y, goal.pose.orientation.w = 1.0 + k, -2.0 * k, 1.0
        goals.append(goal)
    return {"camera/image_raw": images, "odom": odoms, "cmd_vel": commands, "goal_pose": goals}


def test_recorder_writes_every_message_it_receives_exactly(ros_context, start_node, tmp_path: Path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.highlevel import AnyReader

    bag = tmp_path / "bag"
    recorder = start_node("recore_nav.recorder", "-p", f"output:={bag}", "-r", "__ns:=/robot1")
    _wait_for_log(recorder, "recording", 30.0)
    node = Node("robot_drivers", namespace="/robot1", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    messages = _published_messages()
    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    publishers = {topic: node.create_publisher(type(msgs[0]), topic, reliable) for topic, msgs in messages.items()}
    try:
        deadline = time.monotonic() + 20.0
        while any(p.get_subscription_count() == 0 for p in publishers.values()):
            assert time.monotonic() < deadline, f"the recorder never subscribed:\n{recorder.output()}"
            executor.spin_once(timeout_sec=0.05)
        for k in range(12):
            for topic, msgs in messages.items():
                if k < len(msgs):
                    publishers[topic].publish(msgs[k])
            executor.spin_once(timeout_sec=0.03)
        time.sleep(1.0)
    finally:
        executor.shutdown()
        node.destroy_node()
    assert recorder.stop() == 0, recorder.output()
    assert "closed" in recorder.output()

    received: dict[str, list[bytes]] = {}
    with AnyReader([bag]) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            "/robot1/camera/image_raw": "sensor_msgs/msg/Image", "/robot1/odom": "nav_msgs/msg/Odometry",
            "/robot1/cmd_vel": "geometry_msgs/msg/Twist", "/robot1/goal_pose": "geometry_msgs/msg/PoseStamped"}
        for conn, _, raw in reader.messages():
            received.setdefault(conn.topic.removeprefix("/robot1/"), []).append(bytes(raw))
            decoded = reader.deserialize(raw, conn.msgtype)       # rosbags reads what rclpy wrote
        assert decoded is not None
    for topic, msgs in messages.items():
        # Every message arrived (reliable publishers, a deep queue) and reads back equal. (Bytes are
        # compared as messages: CDR alignment padding is whatever memory the sender's buffer held.)
        got = received.get(topic, [])
        assert [deserialize_message(raw, type(msgs[0])) for raw in got] == msgs, topic
        assert [len(raw) for raw in got] == [len(serialize_message(m)) for m in msgs], topic
    with AnyReader([bag]) as reader:
        odom_conn = next(c for c in reader.connections if c.topic.endswith("odom"))
        last = [reader.deserialize(raw, odom_conn.msgtype) for _, _, raw in reader.messages([odom_conn])][-1]
    assert last.pose.pose.position.x == pytest.approx(1.1) and last.pose.covariance[0] == 11.0


def test_recorder_refuses_an_existing_bag(ros_env, tmp_path: Path):
    (tmp_path / "bag").mkdir()
    result = subprocess.run([sys.executable, "-m", "recore_nav.recorder", "-o", str(tmp_path / "bag")],
                            env=ros_env.env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "exists already" in result.stdout + result.stderr


def test_recording_the_simulated_robot_gives_a_valid_dataset(ros_env, start_node, tmp_path: Path):
    """Bridge + navigation node over DDS, the recorder beside them, then the importer."""
    from onnx_policies import write_goal_seeking_bundle

    bundle = write_goal_seeking_bundle(tmp_path / "bundle")
    bag = tmp_path / "sim_bag"
    recorder = start_node("recore_nav.recorder", "-p", f"output:={bag}", "-p", "record_depth:=true")
    _wait_for_log(recorder, "recording", 30.0)
    nav = start_node("recore_nav.nav_node", "--params-file", PARAMS, "-p", f"model_dir:={bundle}")
    time.sleep(1.0)
    bridge = start_node("recore_nav.sim.bridge_node", "--params-file", PARAMS, "-p", "episodes:=3",
                        "-p", "max_steps:=30", "-p", "seed:=21")
    try:
        bridge.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the bridge did not finish its episodes:\n{bridge.output()}\n{nav.output()}")
    assert "all episodes done" in bridge.output(), bridge.output()
    assert recorder.stop() == 0, recorder.output()
    nav.stop()

    arrays, stats = import_bags([bag], ImportOptions(depth=True), progress=False)
    dataset = OfflineDataset.from_arrays(arrays, str(bag))
    assert 2 <= dataset.num_trajectories <= 4, (dataset.ends, stats)
    assert dataset.size >= 45 and dataset.rgb.shape[1:] == (64, 64, 3) and dataset.depth.shape[1:] == (64, 64, 1)
    assert float(dataset.rgb.std()) > 5.0                     # real camera pictures, not blank frames
    moving = np.abs(dataset.actions).sum(axis=1) > 0
    assert moving.mean() > 0.5, nav.output()                  # the navigation node drove the robot
    has_goal = np.isfinite(dataset.goal[:, 0])
    assert has_goal.mean() > 0.6 and np.all(dataset.goal[has_goal, 0] < 12.0)
    # The first stored goal distance of an episode matches the simulator's start (1-10 m geodesic).
    starts = dataset.starts[has_goal[dataset.starts]]
    assert np.all((dataset.goal[starts, 0] > 0.3) & (dataset.goal[starts, 0] < 10.5))
