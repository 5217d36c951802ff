"""iGibson's point-goal task behind this project's environment contract (docs/architecture.md).

`IGibsonPointNavEnv` wraps `igibson.envs.igibson_env.iGibsonEnv` with task `point_nav_random`
(the task the embedded simulator copies: success within 0.36 m, 500 steps, geodesic potential
reward, +10 on success, -0.1 a collision) and maps its observations and info to ours:
rgb float [0,1] -> uint8, depth normalised by `depth_high` -> metres, iGibson's semantic class
ids -> our classes (0 floor, 1 wall, 2 obstacle, 3 other), the polar goal -> (distance, cos,
sin). Its differential-drive controller takes the same normalised (linear, angular) action.

Splits: iGibson's static Gibson scenes have one appearance, so the `ood` and `sim2real` splits
are applied to the rendered image here: `ood` shifts hue, contrast and brightness per episode;
`sim2real` adds pixel noise and blur (the embedded simulator's splits are richer).

iGibson 2.2.2 does not build from its PyPI sdist as shipped on Python 3.11 (its pybind11 2.6
headers, `sysconfig` "SO", CUDA interop and a missing `<iostream>` need fixing), its own asset
downloads are gone, and headless Mesa needs GLSL 4.50 without PBR or shadows (set below).
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

import gymnasium as gym
import numpy as np

from recore_nav import task
from recore_nav.task import ACTION_DIM, GOAL_DIM, SPLITS

INSTALL_HINT = (
    "iGibson is not installed in this environment. --env igibson needs iGibson 2.2.x "
    "(pip install igibson==2.2.2 'numpy<2' gym==0.26.2 'bddl~=1.0.1' pybullet==3.2.7; on Python 3.11 its "
    "sdist needs build fixes: pybind11 2.13 headers, EXT_SUFFIX for SO, CUDA interop off) and scene assets named by "
    "GIBSON_ASSETS_PATH / GIBSON_DATASET_PATH. Use --env embedded for the built-in MuJoCo simulator."
)
# iGibson's class names (igibson.utils.constants / semantic_class mapping) -> our seg classes.
_FLOOR_NAMES = ("floors", "floor", "carpet")
_WALL_NAMES = ("walls", "wall", "door", "window")
_CEILING_NAMES = ("ceilings", "ceiling")


class IGibsonMissing(RuntimeError):
    """iGibson cannot be imported; the message says how to install it."""


def require_igibson() -> None:
    try:
        import igibson  # noqa: F401
    except ImportError:
        raise IGibsonMissing(INSTALL_HINT) from None


def igibson_task_config(image_size: int, max_steps: int, scene_id: str) -> dict[str, Any]:
    """The iGibson YAML config of the point-goal task with this project's constants."""
    return {
        "scene": "gibson", "scene_id": scene_id, "build_graph": True, "load_texture": True,
        "trav_map_resolution": 0.1, "trav_map_erosion": 2, "should_open_all_doors": True,
        "robot": {"name": "Turtlebot", "action_type": "continuous", "action_normalize": True,
                  "base_name": None, "scale": 1.0, "self_collision": False, "rendering_params": None,
                  "controller_config": {"base": {"name": "DifferentialDriveController"}}},
        "task": "point_nav_random", "target_dist_min": task.MIN_GOAL_DISTANCE, "target_dist_max": task.MAX_GOAL_DISTANCE,
        "goal_format": "polar", "task_obs_dim": 4, "reward_type": "geodesic",
        "success_reward": task.SUCCESS_REWARD, "potential_reward_weight": 1.0,
        "collision_reward_weight": -task.COLLISION_PENALTY,
        "discount_factor": 0.99, "dist_tol": task.SUCCESS_RADIUS, "max_step": max_steps, "max_collisions_allowed": max_steps,
        "initial_pos_z_offset": 0.1, "collision_ignore_link_a_ids": [1, 2, 3, 4],
        "output": ["task_obs", "rgb", "depth", "seg"], "fisheye": False,
        "image_width": image_size, "image_height": image_size, "vertical_fov": 90,
        "depth_low": 0.0, "depth_high": task.DEPTH_MAX, "depth_noise_rate": 0.0,
    }


class IGibsonPointNavEnv(gym.Env):
    """iGibson point-goal navigation with this project's observation, action and info contract."""

    check_available = staticmethod(require_igibson)   # the factory asks before starting workers
    # The command an action of 1 means. iGibson's normalised differential-drive controller scales
    # to the robot's own wheel limits; the bundle records these (the task's) for the robot side.
    max_linear_speed = task.MAX_LINEAR_SPEED
    max_angular_speed = task.MAX_ANGULAR_SPEED
    control_dt = task.CONTROL_DT

    def __init__(self, split: str = "train", image_size: int = 64, seed: int | None = None,
                 max_steps: int = task.MAX_EPISODE_STEPS, scene_id: str = "Rs", config_file: str | None = None) -> None:
        require_igibson()
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        from igibson.envs.igibson_env import iGibsonEnv
        from igibson.render.mesh_renderer.mesh_renderer_settings import MeshRendererSettings

        config = igibson_task_config(image_size, max_steps, scene_id)
        if config_file is None:
            import yaml
            handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
            yaml.safe_dump(config, handle)
            handle.close()
            config_file = handle.name
        # Headless Mesa llvmpipe refuses GLSL 4.60 and has no PBR/shadows worth paying for (NOTES.md).
        settings = MeshRendererSettings(glsl_version_override=450, enable_pbr=False, enable_shadow=False)
        self._env = iGibsonEnv(config_file=config_file, mode="headless", action_timestep=task.CONTROL_DT,
                               physics_timestep=1 / 120.0, rendering_settings=settings)
        self.split = split
        self.image_size = image_size
        self.max_steps = max_steps
        self.depth_high = float(config["depth_high"])
        self._seg_lookup = self._seg_class_lookup()
        self._rng = np.random.default_rng(seed)
        self._seed = seed
        self._style = None
        s = image_size
        self.observation_space = gym.spaces.Dict({
            "rgb": gym.spaces.Box(0, 255, (s, s, 3), np.uint8),
            "depth": gym.spaces.Box(0.0, self.depth_high, (s, s, 1), np.float32),
            "seg": gym.spaces.Box(0, 3, (s, s), np.uint8),
            "goal": gym.spaces.Box(-np.inf, np.inf, (GOAL_DIM,), np.float32),
        })
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._env.seed(seed)
            np.random.seed(seed)   # iGibson samples start and goal with numpy's global generator
        elif self._seed is not None:
            self._env.seed(self._seed)
            np.random.seed(self._seed)
            self._seed = None
        self._style = self._rng.uniform([-0.5, 0.6, -0.25], [0.5, 1.4, 0.25]) if self.split == "ood" else None
        state = self._env.reset()
        self.collisions, self.steps = 0, 0
        self.shortest_path_length = self._geodesic()
        return self._observation(state), self._info(collision=False, success=False, spl=0.0)

    def step(self, action):
        action = np.clip(np.nan_to_num(np.asarray(action, np.float32).reshape(ACTION_DIM)), -1.0, 1.0)
        state, reward, done, info = self._env.step(action)
        collision = len(self._env.collision_links) > 0
        self.collisions += int(collision)
        self.steps += 1
        success = bool(info.get("success", False))
        terminated = success
        truncated = bool(done) and not success
        return (self._observation(state), float(reward), terminated, truncated,
                self._info(collision, success, float(info.get("spl", 0.0))))

    def close(self) -> None:
        self._env.close()

    # -- mapping to the contract -------------------------------------------------------------
    def _observation(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rgb = np.clip(state["rgb"][..., :3], 0.0, 1.0)
        if self._style is not None:       # ood: hue rotation (channel mix), contrast, brightness
            shift, contrast, brightness = self._style
            rgb = np.clip((np.roll(rgb, 1, -1) * abs(shift) + rgb * (1 - abs(shift)) - 0.5) * contrast
                          + 0.5 + brightness, 0.0, 1.0)
        if self.split == "sim2real":
            import cv2
            rgb = cv2.GaussianBlur(rgb.astype(np.float32), (3, 3), 0.8)
            rgb = np.clip(rgb + self._rng.normal(0.0, 0.03, rgb.shape), 0.0, 1.0)
        depth = (np.asarray(state["depth"], np.float32).reshape(self.image_size, self.image_size, 1)
                 * self.depth_high)
        seg_ids = np.asarray(state["seg"]).reshape(self.image_size, self.image_size).astype(np.int64)
        seg = self._seg_lookup[np.clip(seg_ids, 0, len(self._seg_lookup) - 1)]
        distance, angle = float(state["task_obs"][0]), float(state["task_obs"][1])
        goal = np.array([distance, math.cos(angle), math.sin(angle)], np.float32)
        return {"rgb": (rgb * 255.0).round().astype(np.uint8), "depth": depth, "seg": seg, "goal": goal}

    def _seg_class_lookup(self) -> np.ndarray:
        from igibson.utils.constants import MAX_CLASS_COUNT
        from igibson.utils.semantics_utils import get_class_name_to_class_id
        lookup = np.full(MAX_CLASS_COUNT + 1, 2, np.uint8)   # everything solid is an obstacle ...
        lookup[0] = 3                                         # ... background/unlabelled is other
        for name, class_id in get_class_name_to_class_id().items():
            if class_id <= MAX_CLASS_COUNT:
                lookup[class_id] = (0 if name in _FLOOR_NAMES else 1 if name in _WALL_NAMES
                                    else 3 if name in _CEILING_NAMES else 2)
        return lookup

    def _geodesic(self) -> float:
        return float(self._env.task.get_geodesic_potential(self._env))

    def _info(self, collision: bool, success: bool, spl: float) -> dict[str, Any]:
        robot = self._env.robots[0]
        x, y, _ = robot.get_position()
        yaw = float(robot.get_rpy()[2])
        target = self._env.task.target_pos
        return {
            "success": success, "collision": bool(collision), "collisions": self.collisions,
            "geodesic_distance": self._geodesic(), "shortest_path_length": self.shortest_path_length,
            "path_length": float(getattr(self._env.task, "path_length", 0.0)), "spl": spl,
            "robot_pose": np.array([x, y, yaw]), "goal_position": np.array(target[:2], np.float64),
            "invalid_actions": 0, "steps": self.steps,
        }


def _main() -> None:
    """`python -m training.environments.igibson`: check that iGibson can be imported."""
    try:
        require_igibson()
    except IGibsonMissing as err:
        raise SystemExit(str(err))
    print("iGibson is importable")


if __name__ == "__main__":
    _main()
