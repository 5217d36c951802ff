"""Records the navigation topics to a rosbag2 MCAP file, on the robot, without a ROS 2 install of rosbag2.

    recore-nav-record -o runs/bag_001                       # or: ros2 launch ... record:=true
    recore-nav-record --ros-args -p record_depth:=true -r camera/image_raw:=/camera/color/image_raw

Subscribes to the camera image, odometry, cmd_vel and goal topics of `recore_nav.ros_interface`
(and the depth image when `record_depth` is set), each as serialized bytes (`raw=True`), and
writes those CDR bytes as they are to the bag with the `rosbags` library's ROS 2 Jazzy message
definitions: nothing is deserialized, so the bag holds exactly what was received, stamped with
the time of receipt. SIGINT or SIGTERM closes the bag cleanly (its metadata is written last).
`python -m training.data.rosbag_import BAG --out dataset.npz` turns bags into offline datasets.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import rclpy
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

from recore_nav import node_process
from recore_nav.ros_interface import (
    CMD_VEL_QOS,
    CMD_VEL_TOPIC,
    DEPTH_TOPIC,
    GOAL_QOS,
    GOAL_TOPIC,
    IMAGE_QOS,
    IMAGE_TOPIC,
    ODOM_QOS,
    ODOM_TOPIC,
)

NODE_NAME = "recorder"
# (topic, message class, the interface's QoS): reliability and durability as the navigation node
# subscribes, so the recorder matches the same publishers.
TOPICS = ((IMAGE_TOPIC, Image, IMAGE_QOS), (ODOM_TOPIC, Odometry, ODOM_QOS),
          (CMD_VEL_TOPIC, Twist, CMD_VEL_QOS), (GOAL_TOPIC, PoseStamped, GOAL_QOS))
DEPTH = (DEPTH_TOPIC, Image, IMAGE_QOS)
# A recorder keeps every message, not the newest: a deep queue absorbs a slow write.
RECORD_QUEUE_DEPTH = 100


def ros_type_name(msg_class: type) -> str:
    """'sensor_msgs/msg/Image' for sensor_msgs.msg.Image: the name rosbag2 stores."""
    return f"{msg_class.__module__.split('.')[0]}/msg/{msg_class.__name__}"


def recording_qos(profile: QoSProfile) -> QoSProfile:
    """`profile`'s reliability and durability with a queue deep enough to keep every message."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RECORD_QUEUE_DEPTH,
                      reliability=profile.reliability, durability=profile.durability)


class BagWriter:
    """A rosbag2 MCAP bag being written: one connection per topic, serialized messages in, counts kept."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} exists already; choose another output")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
        self.counts[topic] = 0

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        self._writer.write(self._connections[topic], stamp_ns, data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the file and write the bag's metadata; a second call does nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class RecorderNode(Node):
    """Writes every message of the recorded topics, as received, to a `BagWriter`."""

    def __init__(self, output: str | None = None) -> None:
        super().__init__(NODE_NAME)

        def declare(name: str, default, description: str):
            return self.declare_parameter(name, default, ParameterDescriptor(description=description)).value

        path = output or declare("output", "", "Bag directory to create; empty: a new one in output_dir.")
        directory = declare("output_dir", ".", "Where a bag without an `output` name goes: recore_nav_<date>_<time>.")
        record_depth = declare("record_depth", False, f"Record {DEPTH_TOPIC} too.")
        path = Path(path or Path(directory) / time.strftime("recore_nav_%Y%m%d_%H%M%S"))
        self.bag = BagWriter(path)
        for topic, msg_class, qos in TOPICS + ((DEPTH,) if record_depth else ()):
            # The resolved name (namespace and remapping applied) is the one the bag stores.
            name = self.resolve_topic_name(topic)
            self.bag.add_topic(name, ros_type_name(msg_class))
            self.create_subscription(msg_class, topic, lambda data, name=name: self._on_message(name, data),
                                     recording_qos(qos), raw=True)
        self.get_logger().info(f"recording {', '.join(self.bag.counts)} to {self.bag.path}")

    def _on_message(self, topic: str, data: bytes) -> None:
        self.bag.write(topic, self.get_clock().now().nanoseconds, data)

    def close(self) -> None:
        self.bag.close()
        counts = ", ".join(f"{topic} {n}" for topic, n in self.bag.counts.items())
        self.get_logger().info(f"closed {self.bag.path}: {sum(self.bag.counts.values())} messages ({counts})")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description="Record the navigation topics to a rosbag2 MCAP file.")
    parser.add_argument("-o", "--output", default=None, help="bag directory to create (the `output` parameter)")
    split = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    args, ros_args = parser.parse_args(argv[:split]), argv[split:]

    # A signal never lands in the middle of a write: the bag is closed with the context still up.
    stop, _ = node_process.init([sys.argv[0], *ros_args])
    try:
        node = RecorderNode(args.output)
    except (OSError, ValueError) as err:
        rclpy.logging.get_logger(NODE_NAME).fatal(" ".join(str(err).split()))
        rclpy.try_shutdown()
        return 1
    try:
        node_process.spin(node, stop)
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
