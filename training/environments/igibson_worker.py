"""iGibson in its own process and Python environment, driven by `IGibsonPointNavEnv` over two pipes.

iGibson 2.2 needs numpy < 2 and gym, which the training environment (numpy 2, torch) must not
downgrade, so it runs in the venv `scripts/install_igibson.py` builds, as a worker:

    <igibson python> -m training.environments.igibson_worker READ_FD WRITE_FD

Requests and replies are length-prefixed pickles of plain Python values, with numpy arrays sent
as (dtype, shape, bytes) so the two sides' numpy versions need not read each other's pickles:

    ("init", {"config": iGibson config dict})                       -> {"pid": ...}
    ("reset", {"scene_id", "scene_dir", "start": (x, y, yaw), "goal": (x, y), "fovy_deg"})
                                                                    -> observation (below)
    ("step", {"command": (linear, angular) in [-1, 1]})             -> observation + "collision"
    ("shortest_path", {"pairs": [((x, y), (x, y)), ...]})            -> {"lengths": iGibson's geodesics}
    ("traversability", {})                 -> {"map": iGibson's loaded map (255 free), "resolution"}
    ("close", {})                                                   -> {} and the worker exits
    any failure                                                     -> {"error": one line}

An observation is the rendered camera as the environment contract has it (rgb uint8, depth in
metres along the optical axis, our seg classes from the scene's geometry) and the robot's pose
and velocity, all in iGibson's frame. iGibson's own `PointNavRandomTask` runs the episode, with
the start and goal the trainer drew (so both simulators run the same episodes); the task's reward
and metrics are computed by the trainer's side, the same code as the embedded simulator's.
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

    def __init__(self, config: dict[str, Any]) -> None:
        from igibson.envs.igibson_env import iGibsonEnv
        from igibson.render.mesh_renderer.mesh_renderer_settings import MeshRendererSettings

        from training.environments.igibson_assets import points_from_camera, read_scene_info

        self._read_scene_info = read_scene_info
        self._points_from_camera = points_from_camera
        self.config = dict(config)
        self.depth_max = float(config["depth_high"])
        # Headless Mesa (llvmpipe) refuses GLSL 4.60 and has nothing to gain from PBR or shadows;
        # the robot's own body is not in its camera (the embedded simulator's camera sees none).
        settings = MeshRendererSettings(glsl_version_override=450, enable_pbr=False, enable_shadow=False,
                                        hide_robot=True)
        # iGibson pops keys from the config it loads (the robot's name): each load gets a copy.
        self.env = iGibsonEnv(config_file=copy.deepcopy(self.config), mode="headless",
                              action_timestep=float(config["action_timestep"]),
                              physics_timestep=float(config["physics_timestep"]), rendering_settings=settings)
        self.scene_id = self.config["scene_id"]
        self.scene = self._read_scene_info(config["scene_dir"])
        self._requested: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # The episode's start and goal are the trainer's draws, not the task's own.
        self.env.task.sample_initial_pose_and_target_pos = self._requested_pose

    def _requested_pose(self, env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        assert self._requested is not None
        return self._requested

    def reset(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["scene_id"] != self.scene_id:
            self.env.config = copy.deepcopy(self.config)
            self.env.reload_model(request["scene_id"])
            self.env.task.sample_initial_pose_and_target_pos = self._requested_pose
            self.scene_id = request["scene_id"]
            self.scene = self._read_scene_info(request["scene_dir"])
        x, y, yaw = (float(v) for v in request["start"])
        gx, gy = (float(v) for v in request["goal"])
        self._requested = (np.array([x, y, 0.0]), np.array([0.0, 0.0, yaw]), np.array([gx, gy, 0.0]))
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
        eyes = robot.eyes
        seg = self.scene.surface_classes(self._points_from_camera(pc, eyes.get_position(), eyes.get_orientation()))
        x, y, _ = robot.get_position()
        yaw = float(robot.get_rpy()[2])
        vx, vy, _ = robot.get_linear_velocity()
        return {"rgb": rgb, "depth": depth[..., None], "seg": seg.astype(np.uint8),
                "pose": (float(x), float(y), yaw),
                "velocity": (float(math.cos(yaw) * vx + math.sin(yaw) * vy), float(robot.get_angular_velocity()[2]))}


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
                worker = Worker(body["config"])
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
