"""Start the package's nodes where `ros2 launch` is not available (pip-only machines).

The same nodes and the same parameter files as `launch/sim.launch.py` and
`launch/robot.launch.py`, each node in its own process, so they talk over DDS exactly as under
`ros2 launch`:

    recore-nav-sim --episodes 5            # simulator bridge + navigation node, prints results
    recore-nav-robot --ros-args -r camera/image_raw:=/camera/color/image_raw
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from recore_nav.resources import share_path


def node_command(module: str, params_file: Path, overrides: dict[str, object], extra_ros_args: list[str]) -> list[str]:
    """`python -m <module> --ros-args --params-file ... -p name:=value ...`."""
    command = [sys.executable, "-m", module, "--ros-args", "--params-file", str(params_file)]
    for name, value in overrides.items():
        command += ["-p", f"{name}:={json.dumps(value) if isinstance(value, bool) else value}"]
    return command + extra_ros_args


def ros_environment() -> dict[str, str]:
    # Each node points Fast DDS at the shipped large shared-memory profile itself (ros_interface).
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGINT first, so nodes publish their last zero Twist; SIGKILL if they hang."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sim_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Embedded simulator + navigation node, over ROS 2.")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to run (0: until Ctrl-C)")
    parser.add_argument("--split", default=None, help="train, ood or sim2real (default: from the params file)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first episode")
    parser.add_argument("--max-steps", type=int, default=None, help="steps before an episode times out")
    parser.add_argument("--model-dir", default=None, help="policy bundle (default: the shipped model)")
    parser.add_argument("--params-file", type=Path, default=share_path("config", "sim.yaml"))
    parser.add_argument("--wall-time", action="store_true",
                        help="stamp with the wall clock (default: simulated time on /clock, as sim.launch.py)")
    args = parser.parse_args(argv)

    sim_time = {"use_sim_time": not args.wall_time}
    bridge_overrides: dict[str, object] = {"episodes": args.episodes, **sim_time}
    if args.split is not None:
        bridge_overrides["split"] = args.split
    if args.seed is not None:
        bridge_overrides["seed"] = args.seed
    if args.max_steps is not None:
        bridge_overrides["max_steps"] = args.max_steps
    nav_overrides: dict[str, object] = {**sim_time, **({} if args.model_dir is None else {"model_dir": args.model_dir})}

    env = ros_environment()
    nav = subprocess.Popen(node_command("recore_nav.nav_node", args.params_file, nav_overrides, []), env=env)
    bridge = subprocess.Popen(node_command("recore_nav.sim.bridge_node", args.params_file, bridge_overrides, []),
                              env=env)
    try:
        while True:
            try:
                return_code = bridge.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if nav.poll() is not None:
                    print(f"navigation node exited with code {nav.returncode}", file=sys.stderr)
                    return_code = nav.returncode or 1
                    break
    except KeyboardInterrupt:
        return_code = 0
    finally:
        stop(bridge)
        stop(nav)
    return return_code


def robot_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The navigation node alone, for a real robot.")
    parser.add_argument("--params-file", type=Path, default=share_path("config", "robot.yaml"))
    parser.add_argument("--model-dir", default=None, help="policy bundle (default: the shipped model)")
    args, ros_args = parser.parse_known_args(argv)
    if ros_args and ros_args[0] == "--ros-args":
        ros_args = ros_args[1:]
    overrides: dict[str, object] = {} if args.model_dir is None else {"model_dir": args.model_dir}
    nav = subprocess.Popen(node_command("recore_nav.nav_node", args.params_file, overrides, ros_args),
                           env=ros_environment())
    try:
        return nav.wait()
    except KeyboardInterrupt:
        stop(nav)
        return 0


if __name__ == "__main__":
    sys.exit(sim_main())
