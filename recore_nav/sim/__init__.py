"""Embedded point-goal navigation simulator: procedurally generated indoor scenes in MuJoCo.

Public API (stable; the ROS bridge node and training/ use exactly this):

    from recore_nav.sim import PointNavEnv, make_env, make_vector_env
    env = PointNavEnv(split="train", image_size=64, seed=0, max_steps=500)
    obs, info = env.reset()                      # or reset(seed=..., options={"start": (x, y, yaw), "goal": (x, y)})
    obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], np.float32))

Constructor: `PointNavEnv(split="train"|"ood"|"sim2real", image_size=64, seed=None, max_steps=500,
layout_config=LayoutConfig(), task_config=TaskConfig(), robot=RobotSpec(), fixed_layout=None,
render_mode=None|"rgb_array")`. Bad parameters (an impossible layout such as doors narrower than
the robot, or rooms too small for a door) raise ValueError at construction.

Observation (gymnasium Dict):
- `rgb`   uint8 (H, W, 3), the egocentric camera (0.5 m high, 90 degree field of view);
- `depth` float32 (H, W, 1), metric depth along the optical axis, clipped to DEPTH_MAX = 10 m;
- `seg`   uint8 (H, W), classes SEG_CLASSES: 0 floor, 1 wall, 2 obstacle, 3 other (ceiling,
          anything unlabelled);
- `goal`  float32 (3,), `recore_nav.geometry.goal_in_robot_frame`: (distance m, cos, sin bearing).

Action: float32 (2,) in [-1, 1] -> (linear, angular) = action * (max_linear_speed 0.5 m/s,
max_angular_speed 1.5 rad/s), held for control_dt = 0.1 s (10 Hz; 10 physics substeps). An
out-of-range action is clipped (counted in `env.clipped_actions`); a NaN/inf action is replaced
by a stop command and counted (`info["invalid_actions"]` per episode, `env.invalid_actions` over
the env's life), never passed to the physics. A wrongly shaped action raises ValueError.

Task (iGibson point-goal): the start and goal are reachable cells at geodesic distance in
[TaskConfig.min_goal_distance 1 m, max_goal_distance 10 m]; success (terminated) when the robot's
centre is within 0.36 m of the goal; truncated after max_steps. Reward per step = decrease in
geodesic distance to the goal + 10 on success - 0.1 if the robot touched a wall or obstacle in any
physics substep of the step. Walls stop the robot through physics contacts (the robot is a
0.18 m radius cylinder on planar joints, driven by body-frame velocity servos).

`info`: success, collision (this step), collisions (episode count), geodesic_distance,
shortest_path_length (geodesic at the start), path_length (driven), spl (success * shortest /
max(shortest, path); set when the episode ends, else 0), robot_pose (x, y, yaw world frame),
goal_position (x, y), invalid_actions (episode count), steps, expert_action (float32 (2,): what
`oracle_action()` commands from the observation just returned).

For the ROS bridge, baselines and evaluation: `env.robot_pose()` -> (x, y, yaw),
`env.robot_velocity()` -> (v, w) body frame, `env.goal_position` (x, y), `env.control_dt`,
`env.max_linear_speed`, `env.max_angular_speed`, `env.oracle_action(lookahead=0.25)` (shortest-path
expert: steers to a point 0.25 m down the geodesic field; ~100% success, SPL ~1), `env.top_down_map()` (uint8 picture: occupancy, paths, robot,
goal; see `top_down.render_top_down`), `env.geodesic_distance`, `env.path`, `env.layout`,
`env.traversability` (grid maps, `geodesic_field`).

Splits (see `appearance.py`, disjointness asserted at import and tested):
- `train`: checker/gradient textures, hues in [60k, 60k+25) degrees, moderate light;
- `ood`: noise/grid/cross textures, hues in [60k+30, 60k+55) degrees, dim or bright light;
- `sim2real`: train appearance + pixel noise, blur, exposure gain, field of view 70-80 degrees,
  depth noise, 10% actuation noise and a one-step actuation delay.

Scenes: LayoutConfig (2-4 rooms of 3-4 m on a grid by default, doors 0.8-1.0 m, 1-3 obstacles a
room). Geodesic distances come from the layout rasterised at 5 cm, inflated by the robot radius
(0.18 m) plus 2 cm, 16-connected Dijkstra from the goal once per episode. Seeds make layouts,
appearance, episodes and (for sim2real) noise reproducible.

Registered with gymnasium as ENV_ID = "recore_nav/PointNav-v0" (same keyword arguments).

Processes: rendering uses one OpenGL context per process (MUJOCO_GL=egl where libEGL is
installed, else osmesa, unless set). `make_vector_env("embedded", num_envs=n, split=..., seed=...)` (`factory.py`, the one
factory of every environment kind) runs n envs in spawned processes (never fork after GL).
"""

import ctypes.util
import os

import gymnasium as gym

# Before mujoco is imported anywhere in this package: headless rendering, and llvmpipe in the
# calling thread (measured fastest on CPU machines, NOTES.md).
# rosdep installs OSMesa (rosdistro has no key for libEGL); EGL is faster where present.
os.environ.setdefault("MUJOCO_GL", "egl" if ctypes.util.find_library("EGL") else "osmesa")
os.environ.setdefault("LP_NUM_THREADS", "0")

from recore_nav.sim.appearance import Sim2RealShift  # noqa: E402
from recore_nav.sim.env import PointNavEnv, TaskConfig  # noqa: E402
from recore_nav.sim.layout import Layout, LayoutConfig, TraversabilityMap  # noqa: E402
from recore_nav.sim.scene import RobotSpec  # noqa: E402
from recore_nav.sim.top_down import render_top_down  # noqa: E402
from recore_nav.sim.factory import ENV_KINDS, make_env, make_vector_env  # noqa: E402
from recore_nav.task import DEPTH_MAX, NUM_SEG_CLASSES, SEG_CLASSES, SPLITS  # noqa: E402

# gymnasium.make("recore_nav/PointNav-v0", split=..., image_size=...) works too.
ENV_ID = "recore_nav/PointNav-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="recore_nav.sim.env:PointNavEnv")

__all__ = [
    "ENV_ID",
    "PointNavEnv", "TaskConfig", "LayoutConfig", "Layout", "TraversabilityMap", "RobotSpec", "Sim2RealShift",
    "SPLITS", "SEG_CLASSES", "NUM_SEG_CLASSES", "DEPTH_MAX", "render_top_down",
    "ENV_KINDS", "make_env", "make_vector_env",
]
