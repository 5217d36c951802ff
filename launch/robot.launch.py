"""The navigation node alone, for a real robot: `ros2 launch recore_nav robot.launch.py`.

    ros2 launch recore_nav robot.launch.py image_topic:=/camera/color/image_raw cmd_vel_topic:=/base/cmd_vel
    ros2 launch recore_nav robot.launch.py --show-args       # every argument, described

Topic names are launch arguments, remapped onto the node's defaults (camera/image_raw and its
compressed topic, odom, goal_pose, cmd_vel, navigation_status, and the collision monitor's
camera/depth or scan). Without `launch` (pip-only machines) use `recore-nav-robot`.
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

TOPICS = {"camera/image_raw": "image_topic", "camera/image_raw/compressed": "compressed_image_topic",
          "odom": "odom_topic", "goal_pose": "goal_topic", "cmd_vel": "cmd_vel_topic",
          "navigation_status": "status_topic", "camera/depth": "depth_topic",
          "camera/depth/camera_info": "depth_camera_info_topic", "scan": "scan_topic"}


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("recore_nav")
    arg = LaunchConfiguration
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true: the node's clock follows /clock (a simulator or a bag)"),
        DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "robot.yaml"),
                              description="the navigation node's parameter file"),
        DeclareLaunchArgument("model_dir", default_value=os.path.join(share, "models", "recore_pointnav"),
                              description="policy bundle directory (policy.onnx + policy.json)"),
        DeclareLaunchArgument("record", default_value="false",
                              description="true: record camera, odometry, cmd_vel and goals to a bag"),
        DeclareLaunchArgument("bag_dir", default_value=".", description="where record:=true writes its bag"),
    ]
    arguments += [DeclareLaunchArgument(name, default_value=topic, description=f"the robot's topic for {topic}")
                  for topic, name in TOPICS.items()]
    remappings = [(topic, arg(name)) for topic, name in TOPICS.items()]
    common = {"namespace": arg("namespace"), "output": "screen", "remappings": remappings,
              "ros_arguments": ["--log-level", arg("log_level")]}
    navigation = Node(package="recore_nav", executable="navigation_node", name="navigation_node", **common,
                      parameters=[arg("params_file"), {"use_sim_time": arg("use_sim_time"),
                                                       "model_dir": arg("model_dir")}])
    recorder = Node(package="recore_nav", executable="recore-nav-record", name="recorder", **common,
                    parameters=[{"use_sim_time": arg("use_sim_time"), "output_dir": arg("bag_dir")}],
                    condition=IfCondition(arg("record")))
    end_with = RegisterEventHandler(OnProcessExit(
        target_action=navigation, on_exit=[EmitEvent(event=Shutdown(reason="the navigation node exited"))]))
    return LaunchDescription(arguments + [navigation, recorder, end_with])
