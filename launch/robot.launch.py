"""The navigation node alone, for a real robot: `ros2 launch recore_nav robot.launch.py`.

Topic names are launch arguments, remapped onto the node's defaults (camera/image_raw, odom,
goal_pose, cmd_vel, navigation_status, and the collision monitor's camera/depth or scan).
Without `launch` (pip-only machines) use `recore-nav-robot`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

TOPICS = {"camera/image_raw": "image_topic", "odom": "odom_topic", "goal_pose": "goal_topic",
          "cmd_vel": "cmd_vel_topic", "navigation_status": "status_topic",
          "camera/depth": "depth_topic", "scan": "scan_topic"}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("recore_nav")
    arguments = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "robot.yaml")),
        DeclareLaunchArgument("model_dir", default_value=os.path.join(share, "models", "recore_pointnav")),
    ]
    arguments += [DeclareLaunchArgument(arg, default_value=topic, description=f"topic for {topic}")
                  for topic, arg in TOPICS.items()]
    return LaunchDescription(arguments + [
        Node(package="recore_nav", executable="navigation_node", name="navigation_node", output="screen",
             parameters=[LaunchConfiguration("params_file"), {"model_dir": LaunchConfiguration("model_dir")}],
             remappings=[(topic, LaunchConfiguration(arg)) for topic, arg in TOPICS.items()]),
        # record:=true: recore-nav-record writes camera, odometry, cmd_vel and goals to a bag in bag_dir.
        DeclareLaunchArgument("record", default_value="false", description="true: record the topics to a bag"),
        DeclareLaunchArgument("bag_dir", default_value=".", description="where record:=true writes its bag"),
        Node(package="recore_nav", executable="recore-nav-record", name="recorder", output="screen",
             parameters=[{"output_dir": LaunchConfiguration("bag_dir")}],
             remappings=[(topic, LaunchConfiguration(arg)) for topic, arg in TOPICS.items()],
             condition=IfCondition(LaunchConfiguration("record"))),
    ])
