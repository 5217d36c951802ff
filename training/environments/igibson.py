"""iGibson behind this project's environment contract: the embedded simulator's task in iGibson.

`IGibsonPointNavEnv` is `PointNavEnv` with iGibson as its simulator. The task is the same code:
the episode's draws (layout, appearance, start, goal, sim2real sensor, from the same seed, so
both simulators run the same episodes), the geodesic reward, success, SPL, the sim2real shift
and the shortest-path expert. What iGibson does is the rest: physics (PyBullet, the robot a
differential drive on two wheels under iGibson's `DifferentialDriveController`), collisions
(iGibson's), and rendering (its mesh renderer). Its `PointNavRandomTask` lands the robot at each
episode's start.

Two sources of scenes and robot, switched by `igibson_data`:

- this project's (the default): `igibson_assets.write_scene` turns each drawn layout into an
  iGibson "gibson" scene (mesh, floors, traversability map) with the split's textures, cached on
  disk by content; `write_assets` makes the robot (the embedded robot's size and camera) and the
  primitives iGibson draws with. seg comes from the scene's geometry (iGibson labels a whole
  static scene as one object).
- iGibson's own (`igibson_data=<iGibson's data directory>, igibson_scenes=("Rs_int", ...)`;
  `--igibson-data`, `--igibson-scenes`): its Turtlebot and its interactive or Gibson scenes,
  unchanged. The task draws one of the scenes where it would draw a layout, and the start and
  goal on that scene's own traversability map, in iGibson's frame; `igibson_data.py` says how,
  and how seg is labelled there. The split changes only the sim2real shift: the scenes look as
  they are. Tested on a stand-in data tree built from this project's layouts (iGibson's real
  data cannot be downloaded where this was built), not on the real Turtlebot or `Rs_int`.

Observations: rgb and the renderer's points, from which depth (along the optical axis) is
computed; sim2real's image and action shift as in the embedded simulator.

iGibson needs numpy < 2 and gym, so it runs in its own venv (`python3 scripts/install_igibson.py`)
as a worker process (`igibson_worker.py`) speaking to this class over two pipes; several
environments are several workers (`make_vector_env("igibson", num_envs=N)`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recore_nav import task
from recore_nav.sim.appearance import Appearance
from recore_nav.sim.env import PointNavEnv
from recore_nav.sim.layout import Layout, TraversabilityMap
from training.environments import igibson_assets
from training.environments.igibson_data import INTERACTIVE, find_igibson_data, scene_config, traversability_map
from training.environments.igibson_worker import receive, send

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_igibson.py"
INSTALL_HINT = ("iGibson is not installed: run `python3 scripts/install_igibson.py` (builds iGibson 2.2.2 into its "
                "own venv, about 4 minutes) or `bash scripts/bootstrap.sh igibson`; --env embedded needs nothing")
PHYSICS_TIMESTEP = 1.0 / 120.0      # s; iGibson's default
WORKER_START_TIMEOUT = 300.0        # s; the first scene load builds its traversability graph


class IGibsonMissing(RuntimeError):
    """iGibson cannot run here; the message says how to install it."""


def igibson_python() -> Path:
    """The python of the iGibson venv, or IGibsonMissing with the install command."""
    override = os.environ.get("RECORE_NAV_IGIBSON_PYTHON")
    if override:
        if not Path(override).exists():
            raise IGibsonMissing(f"RECORE_NAV_IGIBSON_PYTHON={override} does not exist")
        return Path(override)
    result = subprocess.run([sys.executable, str(INSTALL_SCRIPT), "--check"], capture_output=True, text=True)
    line = (result.stdout.strip() or result.stderr.strip()).splitlines()[-1:] or [""]
    if result.returncode != 0 or not line[0].startswith("ready: "):
        raise IGibsonMissing(f"{INSTALL_HINT} ({line[0]})")
    return Path(line[0].removeprefix("ready: "))


def require_igibson() -> None:
    igibson_python()


def _cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    code = Path(igibson_assets.__file__).read_bytes()
    return base / "recore_nav" / "igibson-assets" / hashlib.sha256(code).hexdigest()[:16]


def _write_once(target: Path, write) -> Path:
    """`write(root)` makes `root / target.name`; done in a fresh directory and renamed to `target`,
    so the environments (processes) sharing the cache never see half a directory."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        write(tmp)
        os.rename(tmp / target.name, target)
    except OSError:
        if not target.exists():
            raise
    finally:            # another environment may have finished first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class LoadedScene:
    """A scene as the worker loads it (`igibson_worker.py`: iGibson's config keys of the scene,
    how seg is labelled, whether floor contacts count) and its frame: iGibson's (x, y) = the
    task's (x, y) + `offset`."""

    worker_scene: dict[str, Any]
    offset: tuple[float, float] = (0.0, 0.0)

    def to_igibson(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) + np.asarray(self.offset)

    def to_task(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) - np.asarray(self.offset)


class IGibsonPointNavEnv(PointNavEnv):
    """The point-goal task of `PointNavEnv` simulated and rendered by iGibson (module docstring).

    `igibson_data`: iGibson's own data directory, whose Turtlebot and scenes `igibson_scenes`
    (ids under its `ig_dataset/scenes/` or `g_dataset/`) replace this project's; None: this
    project's layouts and robot."""

    def __init__(self, *args: Any, igibson_data: str | Path | None = None, igibson_scenes: Sequence[str] = (),
                 **kwargs: Any) -> None:
        self._worker: subprocess.Popen | None = None
        if igibson_data is None and igibson_scenes:
            raise ValueError("igibson_scenes goes with igibson_data (iGibson's data directory)")
        self._data = None if igibson_data is None else find_igibson_data(igibson_data, igibson_scenes)
        if self._data is not None and kwargs.get("fixed_layout") is not None:
            raise ValueError("fixed_layout is a layout of this project's; iGibson's data brings its own scenes")
        super().__init__(*args, **kwargs)

    @staticmethod
    def check_available(igibson_data: str | Path | None = None, igibson_scenes: Sequence[str] = (),
                        **_: Any) -> None:
        """Raise a one-line error where these environments cannot run: iGibson's data tree
        incomplete (checked first: it needs nothing installed), iGibson not installed. The
        factory asks before starting workers."""
        if igibson_data is not None:
            find_igibson_data(igibson_data, igibson_scenes)
        require_igibson()

    # -- the simulator hooks of PointNavEnv ------------------------------------------------------
    def _init_simulator(self) -> None:
        self._python = igibson_python()
        if self._data is None:
            root = _cache_root()
            self._assets_path = _write_once(root / "assets", lambda tmp: igibson_assets.write_assets(tmp, self.robot))
            self._dataset_path = root / "scenes"
            self._worker_environment = {"GIBSON_ASSETS_PATH": str(self._assets_path),
                                        "GIBSON_DATASET_PATH": str(self._dataset_path)}
        else:
            self._worker_environment = self._data.environment()
        self._data_maps: dict[str, TraversabilityMap] = {}      # by scene id, each built once
        self._scene: LoadedScene | None = None
        self._state: dict[str, Any] | None = None
        self._fovy_deg = self.robot.camera_fovy_deg

    def _new_scene(self, rng: np.random.Generator) -> None:
        if self._data is None:
            super()._new_scene(rng)
            return
        scene = self._data.scenes[int(rng.integers(len(self._data.scenes)))]
        if scene.scene_id not in self._data_maps:
            config = self.layout_config
            self._data_maps[scene.scene_id] = traversability_map(scene, config.grid_resolution,
                                                                 config.inflation_radius)
        self.layout, self.traversability = None, self._data_maps[scene.scene_id]
        self._scene = LoadedScene({"config": scene_config(scene, self.robot.camera_fovy_deg),
                                   "seg": "semantic" if scene.kind == INTERACTIVE else "height",
                                   "ignore_floor_bodies": True})
        self._episodes_on_layout = 0

    def _load_scene(self, appearance: Appearance) -> None:
        digest = hashlib.sha256(repr((self.layout, appearance)).encode()).hexdigest()[:16]
        scene_id = f"recore_{digest}"
        scene_dir = _write_once(self._dataset_path / scene_id, lambda tmp: igibson_assets.write_scene(
            self.layout, tmp, scene_id, self.split, appearance=appearance, traversability=self.traversability))
        info = igibson_assets.read_scene_info(scene_dir)
        self._scene = LoadedScene({"config": igibson_assets.config_overrides(scene_id, self.robot), "seg": "layout",
                                   "scene_dir": str(scene_dir), "ignore_floor_bodies": False}, info.offset)

    def _start_episode(self, start: tuple[float, float, float], fovy_deg: float | None) -> None:
        scene = self._scene
        if self._worker is None:
            self._start_worker(scene)
        self._fovy_deg = fovy_deg if fovy_deg is not None else self.robot.camera_fovy_deg
        x, y = scene.to_igibson(np.array(start[:2]))
        gx, gy = scene.to_igibson(self.goal_position)
        self._state = self._request("reset", {"scene": scene.worker_scene,
                                              "start": (float(x), float(y), float(start[2])),
                                              "goal": (float(gx), float(gy)), "fovy_deg": self._fovy_deg})

    def _simulate(self, command: np.ndarray) -> bool:
        self._state = self._request("step", {"command": np.asarray(command, dtype=np.float32)})
        return bool(self._state["collision"])

    def _render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self._state
        return s["rgb"], s["depth"], s["seg"]

    def robot_pose(self) -> tuple[float, float, float]:
        x, y, yaw = self._state["pose"]
        tx, ty = self._scene.to_task(np.array([x, y]))
        return float(tx), float(ty), float(yaw)

    def robot_velocity(self) -> tuple[float, float]:
        return tuple(self._state["velocity"])

    def camera_vertical_fov(self) -> float:
        return math.radians(self._fovy_deg)

    def igibson_shortest_path_lengths(self, pairs: list[tuple[tuple[float, float], tuple[float, float]]]
                                      ) -> list[float]:
        """iGibson's geodesic distance between each pair of points (the task's frame) in the
        current scene, by its own traversability graph: checks that the scene it loaded is ours."""
        scene = self._scene
        shifted = [(tuple(scene.to_igibson(np.array(a))), tuple(scene.to_igibson(np.array(b)))) for a, b in pairs]
        return self._request("shortest_path", {"pairs": shifted})["lengths"]

    def igibson_traversable_points(self) -> np.ndarray:
        """(n, 2) the points (the task's frame) of the cells iGibson's loaded traversability map
        calls free: a cell (row i, column j) is its corner ((j, i) - size / 2) * resolution there."""
        reply = self._request("traversability", {})
        rows, cols = np.nonzero(reply["map"] == 255)
        size = reply["map"].shape[0]
        corners = (np.stack([cols, rows], axis=1) - size / 2.0) * reply["resolution"]
        return self._scene.to_task(corners)

    def close(self) -> None:
        if self._worker is not None:
            try:
                self._request("close", {})
            except RuntimeError:
                pass
            self._worker.wait(timeout=30)
            self._worker = None
            self._log.close()

    # -- internals -------------------------------------------------------------------------------
    def _max_goal_distance(self, fixed_layout: Layout | None) -> float:
        if self._data is None:
            return super()._max_goal_distance(fixed_layout)
        return float(math.ceil(max(scene.map_extent() for scene in self._data.scenes)))

    # -- the worker ------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        """The task's iGibson config; each scene's keys go over it in the worker."""
        return {
            "task": "point_nav_random", "target_dist_min": self.task.min_goal_distance,
            "target_dist_max": self.task.max_goal_distance, "goal_format": "polar", "task_obs_dim": 4,
            "reward_type": "geodesic", "success_reward": self.task.success_reward, "potential_reward_weight": 1.0,
            "collision_reward_weight": -self.task.collision_penalty, "discount_factor": 0.99,
            "dist_tol": self.task.success_radius, "max_step": 10 ** 9, "max_collisions_allowed": 10 ** 9,
            "initial_pos_z_offset": 0.1, "output": ["task_obs", "rgb", "pc"], "fisheye": False,
            "image_width": self.image_size, "image_height": self.image_size,
            "depth_low": 0.0, "depth_high": task.DEPTH_MAX, "depth_noise_rate": 0.0,
            "action_timestep": self.control_dt, "physics_timestep": PHYSICS_TIMESTEP,
        }

    def _start_worker(self, scene: LoadedScene) -> None:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        env = dict(os.environ, **self._worker_environment, GIBSON_DEVICE_ID="0", IG_LOG_LEVEL="WARNING",
                   PYTHONPATH=str(REPO_ROOT))
        self._log = tempfile.NamedTemporaryFile("w+", prefix="igibson_worker_", suffix=".log", delete=False)
        self._worker = subprocess.Popen(
            [str(self._python), "-m", "training.environments.igibson_worker", str(requests_read), str(replies_write)],
            cwd=REPO_ROOT, env=env, pass_fds=(requests_read, replies_write), stdout=self._log, stderr=self._log)
        os.close(requests_read)
        os.close(replies_write)
        self._requests = os.fdopen(requests_write, "wb")
        self._replies = os.fdopen(replies_read, "rb")
        self._request("init", {"config": self._config(), "scene": scene.worker_scene})

    def _request(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            send(self._requests, (kind, body))
            reply = receive(self._replies)
        except (EOFError, BrokenPipeError):
            reply = {"error": f"the worker exited (code {self._worker.poll()})"}
        if "error" in reply:
            self._log.flush()
            tail = Path(self._log.name).read_text().strip().splitlines()[-5:]
            raise RuntimeError(f"iGibson {kind}: {reply['error']} (worker log {self._log.name}: "
                               + " | ".join(tail) + ")")
        return reply


def _main() -> None:
    """`python -m training.environments.igibson`: say whether iGibson can run here."""
    try:
        print(f"iGibson ready: {igibson_python()}")
    except IGibsonMissing as err:
        raise SystemExit(str(err))


if __name__ == "__main__":
    _main()
