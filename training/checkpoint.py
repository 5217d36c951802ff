"""Atomic training checkpoints: `checkpoint.pt` (torch) beside `replay_<step>.npz` (numpy).

The checkpoint holds only tensors and plain containers, so it loads with
`torch.load(weights_only=True)` and never runs pickled code. The replay lives in its own file,
named by the step it belongs to and written before the checkpoint that names it: a crash at
any moment leaves the previous checkpoint and its replay intact, so a run loses at most the
steps since its last checkpoint.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch

from training.data.replay import EpisodeReplay

CHECKPOINT_FILE = "checkpoint.pt"


def checkpoint_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_FILE


def has_checkpoint(run_dir: Path) -> bool:
    return checkpoint_path(run_dir).is_file()


def save_checkpoint(run_dir: Path, state: dict[str, Any], replay: EpisodeReplay | None = None) -> Path:
    """Write `state` (and `replay`) atomically; `state["step"]` names the replay file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = dict(state)
    if replay is not None:
        replay_name = f"replay_{int(state['step'])}.npz"
        replay.save(run_dir / replay_name)
        state["replay_file"] = replay_name
    path = checkpoint_path(run_dir)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # Only now is the older replay unreferenced.
    for old in run_dir.glob("replay_*.npz"):
        if old.name != state.get("replay_file"):
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """The state dict of `save_checkpoint`, loaded with weights_only=True."""
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint in {run_dir} (expected {path.name})")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_replay(run_dir: Path, state: dict[str, Any]) -> EpisodeReplay | None:
    """The replay the checkpoint `state` names, or None if it was saved without one."""
    name = state.get("replay_file")
    if name is None:
        return None
    return EpisodeReplay.load(Path(run_dir) / name)


class Stoppable(Protocol):
    stop_requested: bool


def stop_on_signals(trainer: Stoppable) -> None:
    """SIGINT/SIGTERM ask `trainer` to stop after saving a checkpoint; a second signal stops at once."""
    def request_stop(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        print(f"\nsignal {signum}: saving a checkpoint and stopping", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


@contextmanager
def checkpoint_on_exit(save: Callable[[], None]) -> Iterator[None]:
    """Save when the block ends, normally or by an error, but not after a second signal
    (KeyboardInterrupt), which may have cut an update in half: the last good checkpoint stays."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        save()
        raise
    save()
