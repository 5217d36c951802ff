"""Episode replay: the experience the world model learns from.

Episodes are kept whole, in arrival order, each a dict of arrays over its steps, in the
Dreamer convention: step t holds the observation o_t, the action a_{t-1} that led to it (zero at
the first step), the reward r_t received on arriving, `is_first` and `is_terminal` (the episode
ended at o_t by success, not by the time limit) and `expert_action`, the shortest-path expert's
command at o_t where the simulator offers one (NaN elsewhere: iGibson, logs). Episodes still running are sampled too, so
learning can begin before the first 500-step episode ends.

`sample(batch, length)` draws [B,T] windows whose start is uniform over all stored steps; a
window that runs past the end of an episode continues into the next stored one, with `is_first`
marking the seam, and every window starts with `is_first` so the model begins from its initial
state. Depth is stored as float16 to halve the memory; it returns as float32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from recore_nav.task import MAX_EPISODE_STEPS

# key -> (per-step shape given the image size, stored dtype, sampled dtype)
def step_layout(image_size: int) -> dict[str, tuple[tuple[int, ...], np.dtype, np.dtype]]:
    h = w = image_size
    return {
        "rgb": ((h, w, 3), np.dtype(np.uint8), np.dtype(np.uint8)),
        "depth": ((h, w, 1), np.dtype(np.float16), np.dtype(np.float32)),
        "seg": ((h, w), np.dtype(np.uint8), np.dtype(np.uint8)),
        "goal": ((3,), np.dtype(np.float32), np.dtype(np.float32)),
        "action": ((2,), np.dtype(np.float32), np.dtype(np.float32)),
        "reward": ((), np.dtype(np.float32), np.dtype(np.float32)),
        "is_first": ((), np.dtype(bool), np.dtype(bool)),
        "is_terminal": ((), np.dtype(bool), np.dtype(bool)),
        # The expert's command at o_t (imitation label); NaN where no expert was there to ask.
        "expert_action": ((2,), np.dtype(np.float32), np.dtype(np.float32)),
    }


OPTIONAL_KEYS = {"expert_action": np.nan}   # a step may omit these; they are stored as this value


class _Episode:
    """One episode's arrays, grown in place while it runs."""

    def __init__(self, layout: dict, capacity: int):
        self.arrays = {k: np.zeros((capacity, *shape), stored) for k, (shape, stored, _) in layout.items()}
        self.length = 0

    def append(self, step: dict[str, np.ndarray]) -> None:
        if self.length == len(self.arrays["rgb"]):   # longer than expected: double the room
            self.arrays = {k: np.concatenate([v, np.zeros_like(v)]) for k, v in self.arrays.items()}
        for key, array in self.arrays.items():
            array[self.length] = step[key] if key in step else OPTIONAL_KEYS[key]
        self.length += 1

    def trimmed(self) -> dict[str, np.ndarray]:
        return {k: v[: self.length] for k, v in self.arrays.items()}


class EpisodeReplay:
    """Whole episodes up to `capacity` steps; the oldest episodes leave first."""

    def __init__(self, capacity: int, image_size: int, max_episode_steps: int = MAX_EPISODE_STEPS):
        if capacity <= 0:
            raise ValueError(f"replay capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.image_size = image_size
        self.max_episode_steps = max_episode_steps
        self.layout = step_layout(image_size)
        self.episodes: list[dict[str, np.ndarray]] = []   # finished, oldest first
        self.running: dict[int, _Episode] = {}            # env index -> episode in progress
        self.total_added = 0                              # steps ever added (for logging)

    # ---- filling -------------------------------------------------------------------------
    def add_step(self, env_index: int, step: dict[str, np.ndarray], episode_over: bool) -> None:
        """Append one step of env `env_index`; `episode_over` closes its episode after it."""
        if step["is_first"] or env_index not in self.running:
            self._close(env_index)
            self.running[env_index] = _Episode(self.layout, self.max_episode_steps + 1)
        self.running[env_index].append(step)
        self.total_added += 1
        if episode_over:
            self._close(env_index)

    def close_running(self) -> None:
        """End every running episode where it stands (before saving, or when envs restart)."""
        for env_index in list(self.running):
            self._close(env_index)

    def _close(self, env_index: int) -> None:
        episode = self.running.pop(env_index, None)
        if episode is None or episode.length == 0:
            return
        self.episodes.append({k: v.copy() for k, v in episode.trimmed().items()})
        self._evict()

    def _evict(self) -> None:
        while len(self.episodes) > 1 and self.num_steps > self.capacity:
            self.episodes.pop(0)

    # ---- reading -------------------------------------------------------------------------
    @property
    def num_steps(self) -> int:
        return sum(len(e["reward"]) for e in self.episodes) + sum(e.length for e in self.running.values())

    @property
    def bytes_per_step(self) -> int:
        return sum(int(np.prod(shape)) * stored.itemsize for shape, stored, _ in self.layout.values())

    @property
    def num_episodes(self) -> int:
        return len(self.episodes) + len(self.running)

    def _all_episodes(self) -> list[dict[str, np.ndarray]]:
        return self.episodes + [e.trimmed() for e in self.running.values() if e.length > 0]

    def sample(self, batch_size: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """[B,T] windows, start uniform over stored steps; arrays in the agent's dtypes."""
        episodes = self._all_episodes()
        if not episodes:
            raise RuntimeError("replay is empty: add steps before sampling")
        lengths = np.array([len(e["reward"]) for e in episodes])
        ends = np.cumsum(lengths)
        out = {k: np.empty((batch_size, length, *shape), sampled)
               for k, (shape, _, sampled) in self.layout.items()}
        starts = rng.integers(0, ends[-1], size=batch_size)
        for b, start in enumerate(starts):
            index = int(np.searchsorted(ends, start, side="right"))
            offset = int(start - (ends[index] - lengths[index]))
            filled = 0
            while filled < length:
                episode = episodes[index]
                take = min(length - filled, lengths[index] - offset)
                for key in out:
                    out[key][b, filled: filled + take] = episode[key][offset: offset + take]
                filled += take
                index, offset = (index + 1) % len(episodes), 0
        out["is_first"][:, 0] = True
        return out

    # ---- persistence ---------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write every episode (running ones as they stand) to one .npz, atomically."""
        episodes = self._all_episodes()
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        arrays = {
            "capacity": np.int64(self.capacity),
            "image_size": np.int64(self.image_size),
            "max_episode_steps": np.int64(self.max_episode_steps),
            "total_added": np.int64(self.total_added),
            "lengths": np.array([len(e["reward"]) for e in episodes], np.int64),
        }
        for key, (shape, stored, _) in self.layout.items():
            arrays[key] = (np.concatenate([e[key] for e in episodes]) if episodes
                           else np.zeros((0, *shape), stored))
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "EpisodeReplay":
        """Read a replay written by `save`; episodes that were running come back finished."""
        with np.load(path) as data:
            replay = cls(int(data["capacity"]), int(data["image_size"]), int(data["max_episode_steps"]))
            replay.total_added = int(data["total_added"])
            bounds = np.concatenate([[0], np.cumsum(data["lengths"])])
            total = int(data["lengths"].sum())
            # Replays written before a key existed load with its missing-value fill.
            columns = {key: data[key] if key in data.files else
                       np.full((total, *shape), OPTIONAL_KEYS[key], stored)
                       for key, (shape, stored, _) in replay.layout.items()}
        for start, end in zip(bounds[:-1], bounds[1:]):
            replay.episodes.append({k: v[start:end].copy() for k, v in columns.items()})
        return replay
