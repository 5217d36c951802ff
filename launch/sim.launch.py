"""The embedded simulator's bridge and the navigation node: `ros2 launch recore_nav sim.launch.py`.

Arguments: split (train|ood|sim2real), episodes (0 = forever), model_dir (policy bundle),
collision_monitor (true: the navigation node checks every command against the bridge's
camera/depth). Without `launch` (pip-only machines) the same nodes start with `recore-nav-sim`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("recore_nav")
    params = os.path.join(share, "config", "sim.yaml")
    model_dir = os.path.join(share, "models", "recore_pointnav")
    return LaunchDescription([
        DeclareLaunchArgument("split", default_value="train", description="train, ood or sim2real"),
        DeclareLaunchArgument("episodes", default_value="0", description="episodes to run; 0 = forever"),
        DeclareLaunchArgument("model_dir", default_value=model_dir, description="policy bundle directory"),
        DeclareLaunchArgument("collision_monitor", default_value="true",
                              description="check every command against camera/depth (true or false)"),
        Node(package="recore_nav", executable="sim_bridge_node", name="sim_bridge", output="screen",
             parameters=[params, {"split": LaunchConfiguration("split"),
                                  "episodes": LaunchConfiguration("episodes")}]),
        Node(package="recore_nav", executable="navigation_node", name="navigation_node", output="screen",
             parameters=[params, {"model_dir": LaunchConfiguration("model_dir"),
                                  "collision_monitor": LaunchConfiguration("collision_monitor")}]),
        # record:=true: recore-nav-record writes camera, odometry, cmd_vel and goals to a bag in bag_dir.
        DeclareLaunchArgument("record", default_value="false", description="true: record the topics to a bag"),
        DeclareLaunchArgument("bag_dir", default_value=".", description="where record:=true writes its bag"),
        Node(package="recore_nav", executable="recore-nav-record", name="recorder", output="screen",
             parameters=[{"output_dir": LaunchConfiguration("bag_dir")}],
             condition=IfCondition(LaunchConfiguration("record"))),
    ])
