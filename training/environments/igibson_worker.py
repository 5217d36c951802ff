"""iGibson in its own process and Python environment, driven by `IGibsonPointNavEnv` over two pipes.

iGibson 2.2 needs numpy < 2 and gym, which the training environment (numpy 2, torch) must not
downgrade, so it runs in the venv `scripts/install_igibson.py` builds, as a worker:

    <igibson python> -m training.environments.igibson_worker READ_FD WRITE_FD

Requests and replies are length-prefixed pickles of plain Python values, with numpy arrays sent
as (dtype, shape, bytes) so the two sides' numpy versions need not read each other's pickles:

    ("init", {"config": the task's iGibson config, "scene": scene})  -> {"pid": ...}
    ("reset", {"scene": scene, "start": (x, y, yaw), "goal": (x, y), "fovy_deg"})
                                                                    -> observation (below)
    ("step", {"command": (linear, angular) in [-1, 1]})             -> observation + "collision"
    ("shortest_path", {"pairs": [((x, y), (x, y)), ...]})            -> {"lengths": iGibson's geodesics}
    ("traversability", {})                 -> {"map": iGibson's loaded map (255 free), "resolution"}
    ("close", {})                                                   -> {} and the worker exits
    any failure                                                     -> {"error": one line}

A scene is {"config": its iGibson config keys (over the task's), "seg": how our classes are
labelled, "scene_dir": (for "layout"), "ignore_floor_bodies": bool}; a reset naming another one
loads it. seg "layout": from the geometry of this project's scene (`scene.json`); "semantic":
from iGibson's semantic classes (an interactive scene); "height": from the points' height above
the floor (a static Gibson scene; `igibson_data.py`). With `ignore_floor_bodies` touching the
floor's bodies is no collision.

An observation is the rendered camera as the environment contract has it (rgb uint8, depth in
metres along the optical axis, our seg classes) and the robot's pose and velocity, all in
iGibson's frame. iGibson's own `PointNavRandomTask` runs the episode on the scene's lowest floor,
with the start and goal the trainer drew (so both simulators run the same episodes); the task's
reward and metrics are computed by the trainer's side, the same code as the embedded simulator's.
Only numpy is imported here at module level: the trainer's side imports the codec below.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import struct
import sys
import traceback
from typing import Any, BinaryIO

import numpy as np

_HEADER = struct.Struct("<Q")


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return ("__ndarray__", array.dtype.str, array.shape, array.tobytes())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(item) for item in value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == "__ndarray__":
        return np.frombuffer(value[3], dtype=np.dtype(value[1])).reshape(value[2]).copy()
    if isinstance(value, dict):
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(item) for item in value)
    return value


def send(stream: BinaryIO, message: Any) -> None:
    payload = pickle.dumps(_encode(message), protocol=4)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def receive(stream: BinaryIO) -> Any:
    """The next message, or EOFError when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the other side closed the pipe")
    size = _HEADER.unpack(header)[0]
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError("the other side closed the pipe mid-message")
    return _decode(pickle.loads(payload))


class Worker:
    """One iGibsonEnv, its scene switched when a reset names another."""

    def __init__(self, config: dict[str, Any], scene: dict[str, Any]) -> None:
        from igibson.envs.igibson_env import iGibsonEnv
        from igibson.render.mesh_renderer.mesh_renderer_settings import MeshRendererSettings

        from training.environments.igibson_assets import points_from_camera
        from training.environments.igibson_data import classes_from_height, classes_from_semantics

        # Resolved once: `_classes` runs every step.
        self._points_from_camera = points_from_camera
        self._classes_from_height, self._classes_from_semantics = classes_from_height, classes_from_semantics
        self.config = dict(config)
        self.depth_max = float(config["depth_high"])
        # Headless Mesa (llvmpipe) refuses GLSL 4.60 and has nothing to gain from PBR or shadows;
        # the robot's own body is not in its camera (the embedded simulator's camera sees none).
        settings = MeshRendererSettings(glsl_version_override=450, enable_pbr=False, enable_shadow=False,
                                        hide_robot=True)
        self.env = iGibsonEnv(config_file=self._scene_config(scene), mode="headless",
                              action_timestep=float(config["action_timestep"]),
                              physics_timestep=float(config["physics_timestep"]), rendering_settings=settings)
        self._requested: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._loaded(scene)

    def _scene_config(self, scene: dict[str, Any]) -> dict[str, Any]:
        # iGibson pops keys from the config it loads (the robot's name): each load gets a copy.
        config = copy.deepcopy(self.config)
        config.update(copy.deepcopy(scene["config"]))
        return config

    def _loaded(self, scene: dict[str, Any]) -> None:
        """After iGibson loaded `scene` (and made its task anew): our labelling, the floor's
        contacts, and the episode's start and goal the trainer's, on the lowest floor."""
        from training.environments.igibson_assets import read_scene_info

        self.scene = scene
        self.seg = scene["seg"]
        self.layout_info = read_scene_info(scene["scene_dir"]) if self.seg == "layout" else None
        if self.seg == "semantic":
            from igibson.utils.semantics_utils import CLASS_NAME_TO_CLASS_ID
            self.class_ids = {name: int(class_id) for name, class_id in CLASS_NAME_TO_CLASS_ID.items()}
        igibson_scene = self.env.scene
        if scene["ignore_floor_bodies"]:
            from training.environments.igibson_data import FLOOR_CATEGORIES
            # The ground plane (a static scene's) and the floor objects (an interactive scene's).
            objects = getattr(igibson_scene, "objects_by_category", {})
            floors = list(igibson_scene.floor_body_ids) + [body for name in FLOOR_CATEGORIES
                                                            for obj in objects.get(name, [])
                                                            for body in obj.get_body_ids()]
            self.env.collision_ignore_body_b_ids |= set(floors)
        # The task's maps are of the lowest floor (floor_trav_0.png), so the robot starts there.
        igibson_scene.get_random_floor = lambda: 0
        self.floor_height = float(igibson_scene.get_floor_height(0))
        self.env.task.sample_initial_pose_and_target_pos = self._requested_pose

    def _requested_pose(self, env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._requested is not None
        return self._requested

    def reset(self, request: dict[str, Any]) -> dict[str, Any]:
        scene = request["scene"]
        if scene["config"] != self.scene["config"]:
            self.env.config = self._scene_config(scene)
            self.env.reload_model(scene["config"]["scene_id"])
            self._loaded(scene)
        x, y, yaw = (float(v) for v in request["start"])
        gx, gy = (float(v) for v in request["goal"])
        z = self.floor_height
        self._requested = (np.array([x, y, z]), np.array([0.0, 0.0, yaw]), np.array([gx, gy, z]))
        self.env.simulator.renderer.set_fov(float(request["fovy_deg"]))
        state = self.env.reset()
        return self._observation(state)

    def step(self, request: dict[str, Any]) -> dict[str, Any]:
        command = np.clip(np.asarray(request["command"], dtype=np.float32).reshape(2), -1.0, 1.0)
        state, _, _, _ = self.env.step(command)
        reply = self._observation(state)
        reply["collision"] = len(self.env.collision_links) > 0
        return reply

    def shortest_path(self, request: dict[str, Any]) -> dict[str, Any]:
        """iGibson's own geodesic distances (A* on its traversability graph) in the loaded scene."""
        scene = self.env.scene
        return {"lengths": [float(scene.get_shortest_path(0, np.asarray(a, dtype=np.float64),
                                                          np.asarray(b, dtype=np.float64), entire_path=False)[1])
                            for a, b in request["pairs"]]}

    def traversability(self, request: dict[str, Any]) -> dict[str, Any]:
        scene = self.env.scene
        return {"map": np.asarray(scene.floor_map[0], dtype=np.uint8), "resolution": float(scene.trav_map_resolution)}

    def _observation(self, state: dict[str, np.ndarray]) -> dict[str, Any]:
        rgb = (np.clip(state["rgb"][..., :3], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        pc = np.asarray(state["pc"], dtype=np.float32)[..., :3]
        # The renderer's camera frame looks along -z; a pixel with no surface comes back as 0.
        no_surface = ~np.any(pc != 0.0, axis=-1)
        depth = np.where(no_surface, self.depth_max, np.minimum(-pc[..., 2], self.depth_max)).astype(np.float32)
        robot = self.env.robots[0]
        seg = self._classes(state, pc, ~no_surface)
        x, y, _ = robot.get_position()
        yaw = float(robot.get_rpy()[2])
        vx, vy, _ = robot.get_linear_velocity()
        return {"rgb": rgb, "depth": depth[..., None], "seg": seg.astype(np.uint8),
                "pose": (float(x), float(y), yaw),
                "velocity": (float(math.cos(yaw) * vx + math.sin(yaw) * vy), float(robot.get_angular_velocity()[2]))}

    def _classes(self, state: dict[str, np.ndarray], pc: np.ndarray, surface: np.ndarray) -> np.ndarray:
        """Our seg classes of the rendered pixels, by the scene's rule (module docstring)."""
        if self.seg == "semantic":
            return self._classes_from_semantics(np.asarray(state["seg"])[..., 0], self.class_ids)
        eyes = self.env.robots[0].eyes
        points = self._points_from_camera(pc, eyes.get_position(), eyes.get_orientation())
        if self.seg == "height":
            return self._classes_from_height(points[..., 2] - self.floor_height, surface)
        return self.layout_info.surface_classes(points)


def main(argv: list[str]) -> int:
    requests = os.fdopen(int(argv[1]), "rb")
    replies = os.fdopen(int(argv[2]), "wb")
    sys.stdout = sys.stderr     # iGibson prints; stdout is the trainer's log, never the pipe
    worker: Worker | None = None
    while True:
        try:
            kind, body = receive(requests)
        except EOFError:
            return 0
        try:
            if kind == "init":
                worker = Worker(body["config"], body["scene"])
                reply: dict[str, Any] = {"pid": os.getpid()}
            elif kind == "close":
                send(replies, {})
                return 0
            elif worker is None:
                raise RuntimeError(f"{kind!r} before init")
            elif kind == "reset":
                reply = worker.reset(body)
            elif kind == "step":
                reply = worker.step(body)
            elif kind == "shortest_path":
                reply = worker.shortest_path(body)
            elif kind == "traversability":
                reply = worker.traversability(body)
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as err:  # noqa: BLE001 - every failure goes back to the trainer as one line
            traceback.print_exc()
            reply = {"error": f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"}
        send(replies, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
