"""End-to-end latency of the navigation node: a camera message published -> the cmd_vel computed
from it arrives, over DDS between two processes. Prints p50/p99 in ms per image size and encoding.

    python bench/ros_latency.py                      # 64x64 and 640x480, raw bgr8 and jpeg, 20 s each
    python bench/ros_latency.py --seconds 60 --control-rate 10

The node runs as on a robot (`python -m recore_nav.nav_node`, config/robot.yaml, collision monitor
off so that only the camera path is timed) with a real ONNX policy whose linear command is a
function of the image's mean brightness. This process publishes odometry, a goal and a camera
stream whose frames cycle through 16 brightness codes, and decodes each cmd_vel back to the frame
it was computed from: latency = cmd_vel arrival - that frame's publication. It includes the wait
for the node's next control tick (up to one control period: the node acts at a fixed rate on the
newest frame), conversion or jpeg decoding, resizing to the policy's 64x64, the policy step and
both DDS hops. Only the first command computed from each frame counts; a frame replaced by a
newer one before the node's tick has no command computed from it. The camera runs at 29 Hz, not a
multiple of the control rate, so frames meet the ticks at every phase.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))   # the test suite's hand-written ONNX policies

from machine import MachineWatch  # noqa: E402  (bench/machine.py)
from onnx_policies import write_goal_seeking_bundle  # noqa: E402

CODES = 16
MAX_LINEAR = 0.5
IMAGE_GAIN = 1.0 / 255.0          # linear = 0.5 * tanh(mean / 255) for a goal 90 degrees to the left


def brightness(code: int) -> int:
    return 8 + 16 * code


def decode(linear: float) -> int | None:
    ratio = linear / MAX_LINEAR
    if not -0.999 < ratio < 0.999:
        return None
    mean = math.atanh(ratio) / IMAGE_GAIN
    code = round((mean - 8) / 16)
    return code if 0 <= code < CODES and abs(mean - brightness(code)) < 4 else None


def measure(size: tuple[int, int], jpeg: bool, seconds: float, control_rate: float, camera_hz: float,
            bundle: Path, domain: int) -> list[float]:
    import rclpy
    from geometry_msgs.msg import PoseStamped, Twist
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    node_process = subprocess.Popen(
        [sys.executable, "-m", "recore_nav.nav_node", "--ros-args", "--params-file", str(ROOT / "config/robot.yaml"),
         "-p", f"model_dir:={bundle}", "-p", "collision_monitor:=false", "-p", "max_linear_accel:=1000.0",
         "-p", "max_angular_accel:=1000.0", "-p", f"control_rate_hz:={control_rate}",
         "-p", f"image_transport:={'compressed' if jpeg else 'raw'}", "--log-level", "warn"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("latency_bench", context=context)
    width, height = size
    frames = []
    for code in range(CODES):
        bgr = np.full((height, width, 3), brightness(code), np.uint8)
        if jpeg:
            frames.append(CompressedImage(format="bgr8; jpeg compressed bgr8",
                                          data=cv2.imencode(".jpg", bgr)[1].tobytes()))
        else:
            frames.append(Image(height=height, width=width, encoding="bgr8", step=width * 3, data=bgr.tobytes()))
    image_pub = (node.create_publisher(CompressedImage, "camera/image_raw/compressed", qos_profile_sensor_data)
                 if jpeg else node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data))
    odom_pub = node.create_publisher(Odometry, "odom", 10)
    goal_pub = node.create_publisher(PoseStamped, "goal_pose", 10)
    published: dict[int, float] = {}       # code -> when its newest frame went out
    used: set[int] = set()                 # frame sequence numbers already answered
    sequence = {"n": 0}
    latencies: list[float] = []

    def send_image() -> None:
        code = sequence["n"] % CODES
        published[code] = time.perf_counter()
        image_pub.publish(frames[code])
        sequence["n"] += 1

    def send_odom() -> None:
        msg = Odometry()
        msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.pose.pose.orientation.w = 1.0
        odom_pub.publish(msg)

    def on_cmd(msg: Twist) -> None:
        arrived = time.perf_counter()
        code = decode(msg.linear.x)
        if code is None or code not in published:
            return
        sent = published[code]
        key = round(sent * 1e6)
        if key not in used:
            used.add(key)
            latencies.append(arrived - sent)

    node.create_subscription(Twist, "cmd_vel", on_cmd, 10)
    node.create_timer(1.0 / camera_hz, send_image)
    node.create_timer(0.05, send_odom)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 30
        while goal_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        goal = PoseStamped()
        goal.header.frame_id = "odom"
        goal.pose.position.y, goal.pose.orientation.w = 1000.0, 1.0
        goal_pub.publish(goal)
        warmup_end = time.monotonic() + 2.0
        while time.monotonic() < warmup_end:
            executor.spin_once(timeout_sec=0.01)
        latencies.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
    finally:
        node_process.terminate()
        node_process.wait(10)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per configuration")
    parser.add_argument("--control-rate", type=float, default=10.0, help="the node's control_rate_hz")
    parser.add_argument("--camera-hz", type=float, default=29.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_large_shm.xml"))
    bundle = write_goal_seeking_bundle(Path(tempfile.mkdtemp()) / "bundle", image_gain=IMAGE_GAIN)
    watch = MachineWatch()
    print(f"camera {args.camera_hz:g} Hz -> navigation node at {args.control_rate:g} Hz -> cmd_vel, "
          f"{args.seconds:g} s each (latency includes waiting for the next control tick)")
    for index, (size, jpeg) in enumerate([((64, 64), False), ((64, 64), True), ((640, 480), False),
                                          ((640, 480), True)]):
        latencies = np.array(measure(size, jpeg, args.seconds, args.control_rate, args.camera_hz, bundle,
                                     domain=90 + index)) * 1e3
        label = f"{size[0]}x{size[1]} {'jpeg' if jpeg else 'raw bgr8'}"
        if len(latencies) == 0:
            print(f"{label:>18}: no command decoded")
            continue
        print(f"{label:>18}: p50 {np.percentile(latencies, 50):6.1f} ms  p99 {np.percentile(latencies, 99):6.1f} ms  "
              f"({len(latencies)} frames)")
    print(watch.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
