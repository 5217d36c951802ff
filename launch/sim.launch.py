"""The embedded simulator's bridge and the navigation node: `ros2 launch recore_nav sim.launch.py`.

    ros2 launch recore_nav sim.launch.py episodes:=3 split:=ood     # ends after 3 episodes
    ros2 launch recore_nav sim.launch.py --show-args                # every argument, described

The launch ends when the bridge has run its episodes (or when either node exits), as
`recore-nav-sim` does. Simulated time by default: the bridge publishes /clock and both nodes
follow it. Without `launch` (pip-only machines) the same nodes start with `recore-nav-sim`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("recore_nav")
    arg = LaunchConfiguration
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of both nodes and their topics"),
        DeclareLaunchArgument("use_sim_time", default_value="true",
                              description="true: stamps and both nodes' clocks follow the simulator's /clock"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "sim.yaml"),
                              description="parameter file of both nodes"),
        DeclareLaunchArgument("model_dir", default_value=os.path.join(share, "models", "recore_pointnav"),
                              description="policy bundle directory (policy.onnx + policy.json)"),
        DeclareLaunchArgument("split", default_value="train", description="simulator appearance: train, ood or sim2real"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the first episode (episode i: seed + i)"),
        DeclareLaunchArgument("episodes", default_value="0", description="episodes to run, then end; 0 = forever"),
        DeclareLaunchArgument("collision_monitor", default_value="true",
                              description="check every command against camera/depth (true or false)"),
        DeclareLaunchArgument("record", default_value="false",
                              description="true: record camera, odometry, cmd_vel and goals to a bag"),
        DeclareLaunchArgument("bag_dir", default_value=".", description="where record:=true writes its bag"),
    ]
    common = {"namespace": arg("namespace"), "output": "screen",
              "ros_arguments": ["--log-level", arg("log_level")]}
    bridge = Node(package="recore_nav", executable="sim_bridge_node", name="sim_bridge", **common,
                  parameters=[arg("params_file"), {"use_sim_time": arg("use_sim_time"), "split": arg("split"),
                                                   "seed": arg("seed"), "episodes": arg("episodes")}])
    navigation = Node(package="recore_nav", executable="navigation_node", name="navigation_node", **common,
                      parameters=[arg("params_file"), {"use_sim_time": arg("use_sim_time"),
                                                       "model_dir": arg("model_dir"),
                                                       "collision_monitor": arg("collision_monitor")}])
    recorder = Node(package="recore_nav", executable="recore-nav-record", name="recorder", **common,
                    parameters=[{"use_sim_time": arg("use_sim_time"), "output_dir": arg("bag_dir")}],
                    condition=IfCondition(arg("record")))
    end_with = [RegisterEventHandler(OnProcessExit(
        target_action=node, on_exit=[EmitEvent(event=Shutdown(reason=f"{name} exited"))]))
        for node, name in ((bridge, "the simulator bridge"), (navigation, "the navigation node"))]
    return LaunchDescription(arguments + [bridge, navigation, recorder] + end_with)
