"""PointNavEnv: iGibson's point-goal task in a procedurally generated MuJoCo indoor scene."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from recore_nav.geometry import goal_in_robot_frame, wrap_angle
from recore_nav import task
from recore_nav.task import ACTION_DIM, DEPTH_MAX, GOAL_DIM, NUM_SEG_CLASSES, SPLITS
from recore_nav.sim.appearance import (Appearance, EpisodeSensor, Sim2RealShift, sample_appearance,
                                       sample_episode_sensor, shift_camera)
from recore_nav.sim.layout import GeodesicField, Layout, LayoutConfig, TraversabilityMap, generate_layout
from recore_nav.sim.scene import EgocentricCamera, RobotSpec, build_mjcf
from recore_nav.sim.top_down import render_top_down


@dataclass(frozen=True)
class TaskConfig:
    """The point-goal task (iGibson's defaults) and the robot's control interface."""

    success_radius: float = task.SUCCESS_RADIUS
    min_goal_distance: float = task.MIN_GOAL_DISTANCE
    max_goal_distance: float = task.MAX_GOAL_DISTANCE
    success_reward: float = task.SUCCESS_REWARD
    collision_penalty: float = task.COLLISION_PENALTY
    max_linear_speed: float = task.MAX_LINEAR_SPEED
    max_angular_speed: float = task.MAX_ANGULAR_SPEED
    control_dt: float = task.CONTROL_DT
    episodes_per_layout: int = 1           # 1: a fresh layout at every reset
    sim2real: Sim2RealShift = field(default_factory=Sim2RealShift)

    def __post_init__(self) -> None:
        if not 0.0 < self.min_goal_distance <= self.max_goal_distance:
            raise ValueError(f"goal distances must satisfy 0 < min <= max, got "
                             f"({self.min_goal_distance}, {self.max_goal_distance})")
        if self.success_radius <= 0.0 or self.control_dt <= 0.0 or self.episodes_per_layout < 1:
            raise ValueError("success_radius and control_dt must be > 0 and episodes_per_layout >= 1")


_GOAL_TRIES = 20


class PointNavEnv(gym.Env):
    """Drive a differential-drive robot to a goal given in its own frame, from camera images.

    See the `recore_nav.sim` docstring for observations, actions, rewards, `info` and splits.
    `reset(options=...)` accepts `{"start": (x, y, yaw), "goal": (x, y)}` to place the robot and
    the goal by hand (both must be on reachable cells); `fixed_layout` pins the scene.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, split: str = "train", image_size: int = 64, seed: int | None = None,
                 max_steps: int = task.MAX_EPISODE_STEPS, layout_config: LayoutConfig | None = None,
                 task_config: TaskConfig | None = None, robot: RobotSpec | None = None,
                 fixed_layout: Layout | None = None, render_mode: str | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if not 16 <= int(image_size) <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {image_size}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.split = split
        self.image_size = int(image_size)
        self.max_steps = int(max_steps)
        self.layout_config = layout_config or LayoutConfig()
        self.task = task_config or TaskConfig()
        self.robot = robot or RobotSpec(radius=self.layout_config.robot_radius)
        if abs(self.robot.radius - self.layout_config.robot_radius) > 1e-9:
            raise ValueError("robot.radius must equal layout_config.robot_radius (the map inflates by it)")
        longest = self.layout_config.num_rooms[1] * 2.0 * self.layout_config.room_size[1]
        if fixed_layout is None and self.task.min_goal_distance > longest:
            raise ValueError(f"min_goal_distance {self.task.min_goal_distance} m cannot occur in layouts of at most "
                             f"{self.layout_config.num_rooms[1]} rooms of {self.layout_config.room_size[1]} m")
        self.render_mode = render_mode
        self.control_dt = self.task.control_dt
        self.max_linear_speed = self.task.max_linear_speed
        self.max_angular_speed = self.task.max_angular_speed

        s = self.image_size
        self.observation_space = gym.spaces.Dict({
            "rgb": gym.spaces.Box(0, 255, (s, s, 3), np.uint8),
            "depth": gym.spaces.Box(0.0, DEPTH_MAX, (s, s, 1), np.float32),
            "seg": gym.spaces.Box(0, NUM_SEG_CLASSES - 1, (s, s), np.uint8),
            "goal": gym.spaces.Box(np.array([0.0, -1.0, -1.0], np.float32),
                                   np.array([self._max_goal_distance(fixed_layout), 1.0, 1.0], np.float32),
                                   (GOAL_DIM,), np.float32),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

        self._init_simulator()
        self._fixed_layout = fixed_layout
        self._initial_seed = seed
        self._seeded = False
        self._episodes_on_layout = 0
        self.layout: Layout | None = None
        self.traversability: TraversabilityMap | None = None
        self.geodesic: GeodesicField | None = None
        self.model: mujoco.MjModel | None = None
        self.data: mujoco.MjData | None = None
        self.goal_position = np.zeros(2)
        self.invalid_actions = 0          # NaN/inf actions seen over the env's life
        self.clipped_actions = 0          # out-of-range actions seen over the env's life
        self.path: list[tuple[float, float]] = []
        self._sensor: EpisodeSensor | None = None
        self._last_obs: dict[str, np.ndarray] | None = None

    # -- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and not self._seeded:
            seed = self._initial_seed
        super().reset(seed=seed)
        self._seeded = True
        options = options or {}
        rng = self.np_random
        # A seeded reset always draws a new scene, so it does not depend on earlier episodes.
        if (seed is not None or self.traversability is None
                or self._episodes_on_layout >= self.task.episodes_per_layout):
            self._new_scene(rng)
        self._episodes_on_layout += 1

        start, goal, self.geodesic = draw_start_and_goal(self.traversability, self.task, rng, options)
        self.goal_position = np.array(goal, dtype=np.float64)
        self._sensor = None
        if self.split == "sim2real":
            self._sensor = sample_episode_sensor(self.task.sim2real, self.image_size, rng)
        self._start_episode(start, self._sensor.fovy_deg if self._sensor is not None else None)
        self._pending_commands = [np.zeros(2)] * self.task.sim2real.action_delay_steps

        self.steps = 0
        self.collisions = 0
        self.episode_invalid_actions = 0
        self.path_length = 0.0
        x, y, _ = self.robot_pose()
        self.path = [(x, y)]
        self.shortest_path_length = self.geodesic.distance_at(x, y)
        self._geodesic_distance = self.shortest_path_length
        self._success = False
        obs = self._observe()
        return obs, self._info(collision=False)

    def step(self, action):
        if self._last_obs is None:
            raise RuntimeError(f"{type(self).__name__}.step called before reset")
        command = self._command_from_action(action)
        if self.split == "sim2real":
            shift = self.task.sim2real
            command = command * (1.0 + self.np_random.normal(0.0, shift.action_noise_std, size=2))
            if shift.action_delay_steps > 0:
                self._pending_commands.append(command)
                command = self._pending_commands.pop(0)
        x0, y0, _ = self.robot_pose()
        collision = self._simulate(command)

        x, y, _ = self.robot_pose()
        self.steps += 1
        self.path_length += math.hypot(x - x0, y - y0)
        self.path.append((x, y))
        self.collisions += int(collision)
        geodesic = self.geodesic.distance_at(x, y)
        reward = self._geodesic_distance - geodesic
        self._geodesic_distance = geodesic
        if collision:
            reward -= self.task.collision_penalty
        self._success = math.hypot(x - self.goal_position[0], y - self.goal_position[1]) < self.task.success_radius
        if self._success:
            reward += self.task.success_reward
        terminated = self._success
        truncated = not terminated and self.steps >= self.max_steps
        obs = self._observe()
        return obs, float(reward), terminated, truncated, self._info(collision)

    def render(self):
        """rgb_array: the camera image (enlarged) beside the top-down map with the path so far."""
        if self.render_mode != "rgb_array" or self._last_obs is None:
            return None
        top = self.top_down_map()
        h = top.shape[0]
        camera = np.kron(self._last_obs["rgb"], np.ones((h // self.image_size or 1, h // self.image_size or 1, 1),
                                                        dtype=np.uint8))
        canvas = np.full((max(h, camera.shape[0]), top.shape[1] + camera.shape[1], 3), 255, np.uint8)
        canvas[:camera.shape[0], :camera.shape[1]] = camera
        canvas[:h, camera.shape[1]:] = top
        return canvas

    def close(self) -> None:
        self._camera.close()
        self.model = self.data = None

    # -- for the ROS bridge, baselines and evaluation ----------------------------------------
    def robot_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the robot in the world frame (m, m, rad in [-pi, pi))."""
        q = self.data.qpos
        return float(q[0]), float(q[1]), wrap_angle(float(q[2]))

    def camera_vertical_fov(self) -> float:
        """The camera's vertical field of view this episode, rad (square pixels, square image)."""
        return math.radians(float(self.model.cam_fovy[self._camera_id]))

    def robot_velocity(self) -> tuple[float, float]:
        """(linear m/s along the heading, angular rad/s) in the body frame."""
        qv, yaw = self.data.qvel, float(self.data.qpos[2])
        return float(math.cos(yaw) * qv[0] + math.sin(yaw) * qv[1]), float(qv[2])

    def oracle_action(self, lookahead: float = 0.25) -> np.ndarray:
        """The shortest-path expert: steer toward a point `lookahead` m down the geodesic field."""
        x, y, yaw = self.robot_pose()
        gx, gy = self.goal_position
        if math.hypot(gx - x, gy - y) < lookahead:
            tx, ty = gx, gy
        else:
            tx, ty = self.geodesic.path_from(x, y, max_length=lookahead)[-1]
        error = wrap_angle(math.atan2(ty - y, tx - x) - yaw)
        angular = float(np.clip(2.5 * error / self.max_angular_speed, -1.0, 1.0))
        linear = float(np.clip(math.cos(error), 0.0, 1.0) ** 4) if abs(error) < math.pi / 3 else 0.0
        return np.array([linear, angular], dtype=np.float32)

    def top_down_map(self, pixels_per_metre: float = 24.0) -> np.ndarray:
        """uint8 (H, W, 3) map: occupancy, the robot's path, the shortest path, robot and goal."""
        shortest = self.geodesic.path_from(*self.path[0]) if self.path else []
        return render_top_down(self.traversability, self.path, self.robot_pose(), tuple(self.goal_position),
                               shortest_path=shortest, pixels_per_metre=pixels_per_metre,
                               success_radius=self.task.success_radius)

    @property
    def geodesic_distance(self) -> float:
        return self._geodesic_distance

    # -- internals ---------------------------------------------------------------------------
    def _max_goal_distance(self, fixed_layout: Layout | None) -> float:
        """Bound of the goal distance: the diagonal of the largest possible layout."""
        if fixed_layout is not None:
            b = fixed_layout.bounds
            return float(math.ceil(math.hypot(b.x1 - b.x0, b.y1 - b.y0)))
        c = self.layout_config
        return float(math.ceil(math.sqrt(2.0) * c.num_rooms[1] * c.room_size[1]))

    def _new_scene(self, rng: np.random.Generator) -> None:
        """The next scene: `self.layout` and `self.traversability` drawn, the simulator's scene
        built (a simulator that brings scenes of its own overrides this: `self.layout` is None)."""
        self.layout, self.traversability, appearance = draw_scene(self.layout_config, self.split, rng,
                                                                  self._fixed_layout)
        self._load_scene(appearance)
        self._episodes_on_layout = 0

    # -- the simulator: MuJoCo here; another simulator overrides these (and robot_pose,
    # robot_velocity, camera_vertical_fov, close) and keeps the task, its draws and its metrics.
    def _init_simulator(self) -> None:
        self._camera = EgocentricCamera(self.image_size)
        self._substeps = max(1, round(self.control_dt / self.robot.physics_timestep))

    def _load_scene(self, appearance: Appearance) -> None:
        """Build `self.layout` with this appearance."""
        robot = self.robot
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.layout, appearance, self.image_size, robot))
        self.data = mujoco.MjData(self.model)
        self._camera.bind(self.model)
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "eye")
        self._robot_geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, "robot")

    def _start_episode(self, start: tuple[float, float, float], fovy_deg: float | None) -> None:
        """Put the robot at `start` (x, y, yaw) at rest, the camera's field of view at `fovy_deg`
        (None: as it is); `self.goal_position` is set."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = start
        mujoco.mj_forward(self.model, self.data)
        if fovy_deg is not None:
            self.model.cam_fovy[self._camera_id] = fovy_deg

    def _simulate(self, command: np.ndarray) -> bool:
        """One control period at `command` (normalised linear, angular); whether the robot touched
        anything during it."""
        self.data.ctrl[:] = (command[0] * self.max_linear_speed, 0.0, command[1] * self.max_angular_speed)
        collision = False
        for _ in range(self._substeps):          # contacts checked every substep: grazes count too
            mujoco.mj_step(self.model, self.data)
            collision = collision or self._in_collision()
        if not np.all(np.isfinite(self.data.qpos)):
            raise RuntimeError("simulation diverged (non-finite state)")
        return collision

    def _render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """rgb uint8 (H, W, 3), depth float32 (H, W, 1) m, seg uint8 (H, W) of the camera now."""
        return self._camera.render(self.data)

    def _command_from_action(self, action) -> np.ndarray:
        try:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"action must be a float array of shape ({ACTION_DIM},), got {action!r}") from None
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            # Rejected, never propagated into the physics: the robot gets a stop command.
            self.invalid_actions += 1
            self.episode_invalid_actions += 1
            return np.zeros(ACTION_DIM)
        if np.any(np.abs(a) > 1.0):
            self.clipped_actions += 1
        return np.clip(a, -1.0, 1.0)

    def _in_collision(self) -> bool:
        # Only the robot's geom can collide (floor and ceiling have no contact bits), so any
        # penetrating contact is the robot touching a wall or an obstacle.
        data = self.data
        return data.ncon > 0 and bool(np.any(data.contact.dist[:data.ncon] < 1e-3))

    def _observe(self) -> dict[str, np.ndarray]:
        rgb, depth, seg = self._render()
        if self._sensor is not None:
            rgb, depth = shift_camera(rgb, depth, self.task.sim2real, self._sensor, self.np_random)
            depth = np.minimum(depth, DEPTH_MAX)
        x, y, yaw = self.robot_pose()
        goal = goal_in_robot_frame(x, y, yaw, float(self.goal_position[0]), float(self.goal_position[1]))
        self._last_obs = {"rgb": rgb, "depth": depth, "seg": seg, "goal": goal}
        return self._last_obs

    def _info(self, collision: bool) -> dict[str, Any]:
        x, y, yaw = self.robot_pose()
        done = self._success or self.steps >= self.max_steps
        spl = (float(self._success) * self.shortest_path_length
               / max(self.shortest_path_length, self.path_length, 1e-9)) if done else 0.0
        return {
            "success": bool(self._success),
            "collision": bool(collision),
            "collisions": int(self.collisions),
            "geodesic_distance": float(self._geodesic_distance),
            "shortest_path_length": float(self.shortest_path_length),
            "path_length": float(self.path_length),
            "spl": float(spl),
            "robot_pose": np.array([x, y, yaw], dtype=np.float64),
            "goal_position": self.goal_position.copy(),
            "camera_vertical_fov": self.camera_vertical_fov(),   # what the camera's CameraInfo says
            "invalid_actions": int(self.episode_invalid_actions),
            "steps": int(self.steps),
            # The shortest-path expert's command for the observation just returned: the label
            # of imitation (DAgger) and the driver of expert-seeded data collection.
            "expert_action": self.oracle_action(),
        }


def draw_scene(layout_config: LayoutConfig, split: str, rng: np.random.Generator,
               fixed_layout: Layout | None = None) -> tuple[Layout, TraversabilityMap, Appearance]:
    """A scene as an episode's generator draws it: the layout (or `fixed_layout`), its
    traversability and the split's appearance (`sim2real` looks like `train`). Any simulator that
    makes the same draws from the same generator gets the same scenes."""
    if fixed_layout is not None:
        layout, traversability = fixed_layout, TraversabilityMap(fixed_layout, layout_config)
    else:
        layout, traversability = generate_layout(layout_config, rng)
    return layout, traversability, sample_appearance("train" if split == "sim2real" else split, rng)


def draw_start_and_goal(grid: TraversabilityMap, task_config: TaskConfig, rng: np.random.Generator,
                        options: dict[str, Any]) -> tuple[tuple[float, float, float], tuple[float, float],
                                                      GeodesicField]:
    """The start (x, y, yaw) and goal (x, y) of an episode, at a geodesic distance in the task's
    range, and the goal's geodesic field; or those of `options` ({"start": ..., "goal": ...})."""
    if "goal" in options or "start" in options:
        if not ("goal" in options and "start" in options):
            raise ValueError("reset options need both 'start' (x, y, yaw) and 'goal' (x, y)")
        start, goal = tuple(map(float, options["start"])), tuple(map(float, options["goal"]))
        if len(start) != 3 or len(goal) != 2:
            raise ValueError("reset options: 'start' is (x, y, yaw) and 'goal' is (x, y)")
        for name, (px, py) in (("start", start[:2]), ("goal", goal)):
            if not grid.is_reachable(px, py):
                raise ValueError(f"reset option {name} ({px:.2f}, {py:.2f}) is not a reachable position")
        return start, goal, grid.geodesic_field(*goal)
    cells = np.flatnonzero(grid.reachable)
    lo, hi = task_config.min_goal_distance, task_config.max_goal_distance
    for _ in range(_GOAL_TRIES):
        goal_cell = np.unravel_index(cells[rng.integers(len(cells))], grid.shape)
        goal = grid.cell_center(*goal_cell)
        geodesic = grid.geodesic_field(*goal)
        candidates = np.flatnonzero((geodesic.distance >= lo) & (geodesic.distance <= hi))
        if len(candidates):
            i, j = np.unravel_index(candidates[rng.integers(len(candidates))], grid.shape)
            x, y = grid.cell_center(i, j)
            return (x, y, float(rng.uniform(-math.pi, math.pi))), goal, geodesic
    raise ValueError(f"no start/goal pair at geodesic distance in [{lo}, {hi}] m in this layout; "
                     f"lower task_config.min_goal_distance or enlarge the rooms")
