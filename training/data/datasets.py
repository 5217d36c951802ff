"""Offline datasets: OGBench's array layout in one `.npz`, trajectories stored back to back.

Keys, N steps in all (`KEYS` states each one's dtype and per-step shape):
- `observations` float32 [N, D]; `actions` float32 [N, A] in [-1, 1]; `terminals` float32 [N],
  1 at the last step of every trajectory (OGBench's own files store it as bool: read as well);
- optional `rgb` uint8 [N, H, W, 3]; `depth` float16 [N, H, W, 1] metres; `goal` float32 [N, 3],
  the recorded task's goal in the robot frame as (distance, cos bearing, sin bearing), NaN where
  a step had none; `robot_pose` float32 [N, 3], (x, y, yaw).

Step t holds the state s_t and the action a_t taken in it, so (s_t, a_t, s_t+1) is a transition
wherever s_t is not the last step of its trajectory; the last step's action leads nowhere that
was recorded. `valids = 1 - terminals` marks the steps that start a transition, as OGBench's
loader (`ogbench.utils.load_dataset`, compact form) derives it. That loader also marks the
second-to-last step of each trajectory terminal, so that its goal sampler never reaches past the
last valid step: `OfflineDataset.ogbench_terminals` is that array, `starts`/`ends` the plain
trajectory bounds. Keys other than these are ignored on loading and refused on saving.

A file that breaks the layout raises `DatasetError` with one line naming the file and the reason.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

# key -> (dtype, dimensions per step: None for any size, an int for a fixed one)
KEYS: dict[str, tuple[np.dtype, tuple[int | None, ...]]] = {
    "observations": (np.dtype(np.float32), (None,)),
    "actions": (np.dtype(np.float32), (None,)),
    "terminals": (np.dtype(np.float32), ()),
    "rgb": (np.dtype(np.uint8), (None, None, 3)),
    "depth": (np.dtype(np.float16), (None, None, 1)),
    "goal": (np.dtype(np.float32), (3,)),
    "robot_pose": (np.dtype(np.float32), (3,)),
}
REQUIRED_KEYS = ("observations", "actions", "terminals")
OPTIONAL_KEYS = tuple(k for k in KEYS if k not in REQUIRED_KEYS)


class DatasetError(ValueError):
    """A dataset that breaks the layout; the message is one line naming the file and the reason."""


@dataclass
class OfflineDataset:
    """A loaded dataset: the stored arrays, `valids` as OGBench derives it, and trajectory bounds."""

    observations: np.ndarray
    actions: np.ndarray
    terminals: np.ndarray
    valids: np.ndarray
    starts: np.ndarray             # int64 [num_trajectories], index of each trajectory's first step
    ends: np.ndarray               # int64 [num_trajectories], index of each trajectory's last step
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    goal: np.ndarray | None = None
    robot_pose: np.ndarray | None = None
    source: str = "<arrays>"

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str = "<arrays>") -> "OfflineDataset":
        """Check `arrays` against the layout (DatasetError naming `source` if they break it) and wrap them."""
        checked = validate_arrays(arrays, source)
        terminals = checked["terminals"]
        ends = np.flatnonzero(terminals > 0)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        return cls(valids=1.0 - terminals, starts=starts, ends=ends.astype(np.int64), source=source, **checked)

    @property
    def size(self) -> int:
        """Number of steps."""
        return len(self.terminals)

    @property
    def num_trajectories(self) -> int:
        return len(self.ends)

    @property
    def keys(self) -> list[str]:
        """The stored keys present, in layout order."""
        return [k for k in KEYS if getattr(self, k) is not None]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in self.keys)

    @property
    def ogbench_terminals(self) -> np.ndarray:
        """Terminals as OGBench's compact loader returns them: the last two steps of a trajectory."""
        following = np.concatenate([self.terminals[1:], [1.0]]).astype(np.float32)
        return np.minimum(self.terminals + following, 1.0)

    def trajectory_end(self, indices: np.ndarray) -> np.ndarray:
        """The last step of the trajectory each step index belongs to."""
        return self.ends[np.searchsorted(self.ends, indices)]

    def arrays(self) -> dict[str, np.ndarray]:
        """The stored keys and their arrays, as `save_dataset` takes them."""
        return {k: getattr(self, k) for k in self.keys}


def validate_arrays(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The layout's keys of `arrays`, checked; terminals as float32. Raises DatasetError."""
    def fail(reason: str) -> DatasetError:
        return DatasetError(f"{source}: {reason}")

    missing = [k for k in REQUIRED_KEYS if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "none"
        raise fail(f"missing key(s) {', '.join(missing)} (found: {found})")
    checked: dict[str, np.ndarray] = {}
    for key, (dtype, step_shape) in KEYS.items():
        if key not in arrays:
            continue
        array = np.asarray(arrays[key])
        if key == "terminals" and array.dtype == np.bool_:
            array = array.astype(np.float32)          # OGBench's own files store bool terminals
        if array.dtype != dtype:
            raise fail(f"{key} has dtype {array.dtype}, expected {dtype}")
        if array.ndim != 1 + len(step_shape) or any(
                want is not None and got != want for got, want in zip(array.shape[1:], step_shape)):
            wanted = ", ".join("N" if i == 0 else ("*" if d is None else str(d))
                               for i, d in enumerate((None, *step_shape)))
            raise fail(f"{key} has shape {array.shape}, expected [{wanted}]")
        checked[key] = array
    size = len(checked["terminals"])
    if size == 0:
        raise fail("no steps")
    lengths = {k: len(v) for k, v in checked.items()}
    if len(set(lengths.values())) > 1:
        raise fail("lengths disagree: " + ", ".join(f"{k} {n}" for k, n in lengths.items()))
    actions = checked["actions"]
    if not np.all(np.isfinite(actions)):
        raise fail(f"actions hold non-finite values (first at step {_first_bad_row(~np.isfinite(actions))})")
    if np.any(np.abs(actions) > 1.0):
        raise fail(f"actions outside [-1, 1] (first at step {_first_bad_row(np.abs(actions) > 1.0)})")
    for key in ("observations", "robot_pose"):
        if key in checked and not np.all(np.isfinite(checked[key])):
            raise fail(f"{key} hold non-finite values (first at step {_first_bad_row(~np.isfinite(checked[key]))})")
    terminals = checked["terminals"]
    if not np.all((terminals == 0.0) | (terminals == 1.0)):
        raise fail("terminals hold values other than 0 and 1")
    if terminals[-1] != 1.0:
        raise fail("no terminal at the last step (every trajectory must end with terminals = 1)")
    return checked


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])


def load_dataset(path: str | os.PathLike) -> OfflineDataset:
    """Read and check a dataset file; DatasetError with the file and the reason if it is malformed."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DatasetError(f"{source}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):   # np.load would take anything else for a pickle
        raise DatasetError(f"{source}: not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as file:
            arrays = {k: file[k] for k in file.files if k in KEYS}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DatasetError(f"{source}: unreadable .npz archive ({reason})") from None
    return OfflineDataset.from_arrays(arrays, source)


def load_datasets(paths: Sequence[str | os.PathLike]) -> OfflineDataset:
    """Read several dataset files as one, trajectories in the order given (a robot's logs from
    several bags, or expert fragments beside exploration). Every file must have the same keys with
    the same per-step shapes; DatasetError names the file that differs."""
    datasets = [load_dataset(path) for path in paths]
    if len(datasets) == 1:
        return datasets[0]
    first = datasets[0]
    for other in datasets[1:]:
        if other.keys != first.keys:
            raise DatasetError(f"{other.source}: keys {', '.join(other.keys)} differ from "
                               f"{first.source}'s {', '.join(first.keys)}")
        for key in first.keys:
            if getattr(other, key).shape[1:] != getattr(first, key).shape[1:]:
                raise DatasetError(f"{other.source}: {key} has per-step shape {list(getattr(other, key).shape[1:])}, "
                                   f"{first.source} {list(getattr(first, key).shape[1:])}")
    arrays = {key: np.concatenate([getattr(d, key) for d in datasets]) for key in first.keys}
    return OfflineDataset.from_arrays(arrays, " + ".join(d.source for d in datasets))


def save_dataset(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], compress: bool = False) -> Path:
    """Check `arrays` and write them to `path` atomically (a temporary file, then a rename).

    Unknown keys are refused, so a file never holds what the loader would drop. `compress` uses
    zlib (smaller, much slower on images).
    """
    path = Path(path)
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        raise DatasetError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    checked = validate_arrays(arrays, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **checked)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def describe(dataset: OfflineDataset) -> str:
    """One line: trajectories, steps, keys with their per-step shapes, and size in memory."""
    keys = " ".join(f"{k}{list(getattr(dataset, k).shape[1:])}" if getattr(dataset, k).ndim > 1 else k
                    for k in dataset.keys)
    return (f"{dataset.source}: {dataset.num_trajectories:,} trajectories, {dataset.size:,} steps "
            f"({dataset.size - dataset.num_trajectories:,} transitions); {keys}; "
            f"{dataset.nbytes / 2**20:,.1f} MiB")


class DatasetBuilder:
    """Collects a dataset step by step into preallocated arrays, one trajectory after another.

    `capacity` is a bound on the steps to come; untouched rows cost no memory (the arrays are
    allocated lazily by the OS), so a generous bound is cheap. It grows when exceeded.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self.size = 0
        self.trajectory_start = 0
        self.trajectories = 0
        self._arrays: dict[str, np.ndarray] = {}

    def append(self, **step: np.ndarray | float) -> None:
        """Add one step; every step of a dataset names the same keys (terminals are set by `end_trajectory`)."""
        if self._arrays and set(step) != set(self._arrays) - {"terminals"}:
            raise ValueError(f"step keys {sorted(step)} differ from the first step's "
                             f"{sorted(set(self._arrays) - {'terminals'})}")
        if not self._arrays:
            for key, value in {**step, "terminals": 0.0}.items():
                if key not in KEYS:
                    raise ValueError(f"unknown dataset key {key!r}")
                self._arrays[key] = np.zeros((self.capacity, *np.shape(value)), KEYS[key][0])
        if self.size == self.capacity:
            self.capacity = int(self.capacity * 1.5) + 1
            for key, array in self._arrays.items():
                grown = np.zeros((self.capacity, *array.shape[1:]), array.dtype)
                grown[: self.size] = array[: self.size]
                self._arrays[key] = grown
        for key, value in step.items():
            self._arrays[key][self.size] = value
        self.size += 1

    @property
    def trajectory_length(self) -> int:
        """Steps appended since the current trajectory began."""
        return self.size - self.trajectory_start

    def end_trajectory(self) -> None:
        """Mark the last appended step terminal; an empty trajectory is nothing to end."""
        if self.trajectory_length > 0:
            self._arrays["terminals"][self.size - 1] = 1.0
            self.trajectory_start = self.size
            self.trajectories += 1

    def discard_trajectory(self) -> None:
        """Drop the steps of the trajectory in progress."""
        self.size = self.trajectory_start

    def arrays(self) -> dict[str, np.ndarray]:
        """The finished trajectories' arrays (views; a trajectory in progress is left out)."""
        return {k: v[: self.trajectory_start] for k, v in self._arrays.items()}
