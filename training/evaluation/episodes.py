"""Running evaluation episodes: the one runner behind the training program's periodic evaluation
and `training/evaluate.py`.

Episode i of an evaluation uses reset seed `seed_base + i` (EVAL_SEED_BASE by default, far from
any training seed), so every policy, every training run and the exported bundle of a run meet the
same layouts, starts and goals, and their results can be compared episode by episode. The
environments run in spawned processes without autoreset; each one takes the next seed as soon as
its episode ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from recore_nav.episodes import EpisodeRecord
from recore_nav.sim.dynamics import BaseDynamics
from recore_nav.sim.factory import env_class, make_vector_env
from recore_nav.task import MAX_EPISODE_STEPS
from training.environments.collector import BatchPolicy, PerEnvPolicies, env_infos

EVAL_SEED_BASE = 1_000_000   # far from training seeds, so evaluation episodes are never trained on
# Episodes for choosing among checkpoints (an offline run's `run.keep_best`), so that what is
# chosen is then measured on EVAL_SEED_BASE's episodes, which played no part in the choice.
VALIDATION_SEED_BASE = 2_000_000
CAMERA_SCALE = 4             # the camera image is shown this much larger in videos


@dataclass(frozen=True)
class EvaluationSpec:
    """Which episodes an evaluation runs and how."""

    env: str = "embedded"            # recore_nav.sim.factory.ENV_KINDS
    split: str = "train"
    episodes: int = 200
    seed_base: int = EVAL_SEED_BASE
    max_steps: int = MAX_EPISODE_STEPS
    image_size: int = 64
    workers: int = 2                 # environment processes
    videos: int = 2                  # videos of successes and of failures, each
    dynamics: BaseDynamics | None = None   # a real base's latency and acceleration limits (None: the simulator's)
    env_kwargs: dict[str, Any] = field(default_factory=dict)   # the environment's own (igibson_data, igibson_scenes)

    @property
    def seeds(self) -> list[int]:
        return [self.seed_base + i for i in range(self.episodes)]


@dataclass
class Evaluation:
    """The episodes of one policy, in seed order, and the videos kept of them."""

    episodes: list[EpisodeRecord]
    videos: list[tuple[EpisodeRecord, np.ndarray]]


class VideoRecorder:
    """Frames of the first episodes that succeed and that fail, up to `wanted` of each: the
    camera (enlarged) beside the environment's own top-down picture (`top_down_map()`: map,
    path so far, shortest path, robot, goal) where it has one."""

    def __init__(self, envs: gym.vector.VectorEnv, wanted: int, with_map: bool):
        self.envs, self.with_map = envs, with_map
        self.wanted = {True: wanted, False: wanted}
        self.frames: list[list[np.ndarray]] = [[] for _ in range(envs.num_envs)]
        self.kept: list[tuple[EpisodeRecord, np.ndarray]] = []

    @property
    def active(self) -> bool:
        return self.wanted[True] > 0 or self.wanted[False] > 0

    def add(self, obs: dict[str, np.ndarray], indices: Sequence[int]) -> None:
        """A frame of environments `indices` from their current observation."""
        if not self.active:
            return
        maps = self.envs.call("top_down_map") if self.with_map else None
        for i in indices:
            camera = np.kron(obs["rgb"][i], np.ones((CAMERA_SCALE, CAMERA_SCALE, 1), np.uint8))
            self.frames[i].append(camera if maps is None else side_by_side(camera, maps[i]))

    def end(self, index: int, record: EpisodeRecord) -> None:
        """Environment `index` finished `record`: keep its frames if that outcome is still wanted."""
        frames, self.frames[index] = self.frames[index], []
        if frames and self.wanted[record.success] > 0:
            self.wanted[record.success] -= 1
            self.kept.append((record, pad_to_macroblocks(np.stack(frames))))


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    height = max(left.shape[0], right.shape[0])
    frame = np.full((height, left.shape[1] + right.shape[1], 3), 255, np.uint8)
    frame[: left.shape[0], : left.shape[1]] = left
    frame[: right.shape[0], left.shape[1]:] = right
    return frame


def pad_to_macroblocks(frames: np.ndarray, block: int = 16) -> np.ndarray:
    """Video codecs want sides divisible by 16: pad with white (frames [T, H, W, 3])."""
    t, h, w = frames.shape[:3]
    padded = np.full((t, -(-h // block) * block, -(-w // block) * block, 3), 255, np.uint8)
    padded[:, :h, :w] = frames
    return padded


def run_episodes(envs: gym.vector.VectorEnv, policy: BatchPolicy, seeds: Sequence[int], *,
                 recorder: VideoRecorder | None = None,
                 on_episode: Callable[[EpisodeRecord], None] | None = None) -> list[EpisodeRecord]:
    """One episode per seed on `envs` (made with `autoreset=False`), in seed order."""
    n = envs.num_envs
    pending = list(seeds)[::-1]                 # popped from the end: the next seed
    current: list[int | None] = [pending.pop() if pending else None for _ in range(n)]
    obs, info = envs.reset(seed=current)
    infos = env_infos(info, n)
    returns = np.zeros(n)
    records: dict[int, EpisodeRecord] = {}
    for i in range(n):
        policy.reset(i)
    if recorder is not None:
        recorder.add(obs, [i for i in range(n) if current[i] is not None])
    while any(seed is not None for seed in current):
        active = np.array([seed is not None for seed in current])
        action = np.clip(np.asarray(policy.act(obs, infos), np.float32), -1.0, 1.0)
        action[~active] = 0.0
        obs, reward, terminated, truncated, info = envs.step(action)
        infos = env_infos(info, n)
        returns += np.where(active, reward, 0.0)
        if recorder is not None:
            recorder.add(obs, np.flatnonzero(active))
        ended = (terminated | truncated)
        if not ended.any():
            continue
        for i in np.flatnonzero(ended & active):
            record = EpisodeRecord.from_info(infos[i], returns[i], seed=current[i])
            records[record.seed] = record
            if recorder is not None:
                recorder.end(i, record)
            if on_episode is not None:
                on_episode(record)
            current[i] = pending.pop() if pending else None
        # Every env whose episode ended starts another: the next seed, or an idle one (unseeded,
        # its steps ignored) once the seeds are used up.
        new_obs, new_info = envs.reset(seed=[current[i] if ended[i] else None for i in range(n)],
                                       options={"reset_mask": ended})
        new_infos = env_infos(new_info, n)
        for i in np.flatnonzero(ended):
            for key in obs:
                obs[key][i] = new_obs[key][i]
            infos[i], returns[i] = new_infos[i], 0.0
            policy.reset(int(i))
            if recorder is not None and current[i] is not None:
                recorder.add(obs, [i])
    return [records[seed] for seed in seeds]


def evaluate(make_policy: Callable[[int], BatchPolicy], spec: EvaluationSpec, label: str = "") -> Evaluation:
    """Every episode of `spec` with the policy `make_policy(number of environments)` makes, with
    a progress bar labelled `label` where one is given."""
    workers = max(1, min(spec.workers, spec.episodes))
    envs = make_vector_env(spec.env, num_envs=workers, split=spec.split, image_size=spec.image_size,
                           max_steps=spec.max_steps, autoreset=False, dynamics=spec.dynamics, **spec.env_kwargs)
    progress = _progress_bar(spec, label) if label else None
    episodes: list[EpisodeRecord] = []

    def count(record: EpisodeRecord) -> None:
        episodes.append(record)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(success=f"{sum(e.success for e in episodes)}/{len(episodes)}")

    try:
        recorder = (VideoRecorder(envs, spec.videos, with_map=hasattr(env_class(spec.env), "top_down_map"))
                    if spec.videos > 0 else None)
        records = run_episodes(envs, make_policy(workers), spec.seeds, recorder=recorder, on_episode=count)
    finally:
        if progress is not None:
            progress.close()
        envs.close()
    return Evaluation(episodes=records, videos=recorder.kept if recorder is not None else [])


def _progress_bar(spec: EvaluationSpec, label: str):
    from tqdm import tqdm

    # A thread lock: tqdm's default multiprocessing lock leaks a semaphore into spawned workers.
    tqdm.set_lock(threading.RLock())
    return tqdm(total=spec.episodes, desc=f"{label} {spec.env}/{spec.split}", unit="episode", dynamic_ncols=True)


class BundlePolicy:
    """A policy bundle through the robot's runtime (onnxruntime, no torch), for one environment."""

    def __init__(self, bundle_dir: Path, providers: str = "cpu"):
        from recore_nav.policy import PolicyRuntime
        self.runtime = PolicyRuntime(bundle_dir, providers=providers, cpu_threads=1)

    def reset(self) -> None:
        self.runtime.reset()

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        return self.runtime.step(obs["rgb"], obs["goal"])


def bundle_policy(bundle_dir: Path, providers: str = "cpu") -> Callable[[int], BatchPolicy]:
    """A bundle's policy for N environments: one runtime (and recurrent state) each."""
    return lambda num_envs: PerEnvPolicies([BundlePolicy(bundle_dir, providers) for _ in range(num_envs)])
