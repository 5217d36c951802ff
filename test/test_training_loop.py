"""The training program end to end on the embedded simulator, and its replay.

A tiny run of the smoke config (one env process, a few dozen updates) through the real CLI:
losses fall, metrics.jsonl and TensorBoard events are written, SIGINT saves a checkpoint that
loads with weights_only=True, and --resume continues from the same step and replay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from training.checkpoint import load_checkpoint, load_replay, save_checkpoint
from training.data.replay import EpisodeReplay

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN = [sys.executable, str(REPO_ROOT / "training" / "train_igibson.py")]
# Short episodes, one eval split and one eval episode: seconds, not minutes.
TINY = ["--set", "env.max_episode_steps=30", "--set", "env.eval_splits=[train]", "--set", "run.eval_episodes=1",
        "--set", "run.prefill_steps=40", "--set", "run.log_every=20", "--set", "run.train_ratio=32",
        "--threads", "1"]


def _step(image_size: int, first: bool, value: float, terminal: bool = False) -> dict[str, np.ndarray]:
    return {"rgb": np.full((image_size, image_size, 3), int(value) % 256, np.uint8),
            "depth": np.full((image_size, image_size, 1), value, np.float32),
            "seg": np.zeros((image_size, image_size), np.uint8), "goal": np.array([value, 1, 0], np.float32),
            "action": np.array([value, -value], np.float32), "reward": np.float32(value),
            "is_first": first, "is_terminal": terminal}


def _fill(replay: EpisodeReplay, lengths: list[int]) -> None:
    value = 0
    for length in lengths:
        for t in range(length):
            replay.add_step(0, _step(replay.image_size, t == 0, value, t == length - 1), episode_over=t == length - 1)
            value += 1


def test_replay_windows_follow_episodes_and_mark_seams():
    replay = EpisodeReplay(capacity=1000, image_size=16)
    _fill(replay, [5, 3, 7])
    batch = replay.sample(64, 6, np.random.default_rng(0))
    assert batch["rgb"].shape == (64, 6, 16, 16, 3) and batch["rgb"].dtype == np.uint8
    assert batch["depth"].dtype == np.float32 and batch["seg"].shape == (64, 6, 16, 16)
    assert batch["is_first"][:, 0].all()
    starts = {0, 5, 8}   # values at which an episode starts
    for b in range(64):
        values = batch["reward"][b]
        for t in range(1, 6):
            # Consecutive inside an episode; a jump only where the next step starts an episode.
            if values[t] != values[t - 1] + 1:
                assert batch["is_first"][b, t] and values[t] in starts
            else:
                assert batch["is_first"][b, t] == (values[t] in starts)


def test_replay_evicts_oldest_episodes_and_round_trips(tmp_path):
    replay = EpisodeReplay(capacity=10, image_size=16)
    _fill(replay, [4, 4, 4])
    assert replay.num_steps == 8 and replay.num_episodes == 2     # the first episode left
    replay.add_step(1, _step(16, True, 100.0), episode_over=False)  # a running episode is kept too
    replay.save(tmp_path / "replay.npz")
    loaded = EpisodeReplay.load(tmp_path / "replay.npz")
    assert loaded.num_steps == replay.num_steps == 9
    a, b = replay.sample(8, 4, np.random.default_rng(3)), loaded.sample(8, 4, np.random.default_rng(3))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path):
    replay = EpisodeReplay(capacity=100, image_size=16)
    _fill(replay, [3])
    state = {"step": 7, "weights": torch.ones(3), "numpy_rng": np.random.default_rng(1).bit_generator.state}
    save_checkpoint(tmp_path, state, replay)
    _fill(replay, [2])
    save_checkpoint(tmp_path, {**state, "step": 9}, replay)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "replay_9.npz"]
    loaded = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert loaded["step"] == 9 and load_replay(tmp_path, loaded).num_steps == 5


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def test_training_run_learns_survives_sigint_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    # A long run, stopped by SIGINT once it has trained a while.
    process = subprocess.Popen(TRAIN + ["--config", str(REPO_ROOT / "config/train/smoke.yaml"),
                                        "--run-dir", str(run_dir), "--set", "run.total_steps=100000",
                                        "--set", "run.eval_every=100000", *TINY],
                               cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and process.poll() is None:
            metrics = run_dir / "metrics.jsonl"
            if metrics.is_file() and sum("model/loss" in line for line in metrics.read_text().splitlines()) >= 3:
                break
            time.sleep(0.5)
        assert process.poll() is None, process.communicate()[0][-3000:]
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output[-3000:]
    assert "stopped at step" in output

    records = [r for r in _metrics(run_dir) if r["kind"] == "train" and "model/loss" in r]
    assert len(records) >= 3
    assert records[-1]["model/loss"] < records[0]["model/loss"], [r["model/loss"] for r in records]
    assert all(np.isfinite(r["model/contrastive_loss"]) for r in records)
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())

    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)   # no pickled code in it
    step, updates = int(state["step"]), int(state["updates"])
    replay_steps = load_replay(run_dir, state).num_steps
    assert step >= 80 and updates > 0 and replay_steps >= step

    # Resume: the same step, weights and replay, then on to step + 20.
    output = subprocess.run(TRAIN + ["--run-dir", str(run_dir), "--resume", "--set", f"run.total_steps={step + 20}",
                                     *TINY], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=150)
    assert output.returncode == 0, output.stdout[-2000:] + output.stderr[-2000:]
    resumed = load_checkpoint(run_dir)
    assert int(resumed["step"]) == step + 20
    assert int(resumed["updates"]) > updates
    assert load_replay(run_dir, resumed).num_steps >= replay_steps + 20
    assert [r for r in _metrics(run_dir) if r["kind"] == "eval"], "the finished run evaluates"
    assert all(r["step"] <= step + 20 for r in _metrics(run_dir))
    # The resume's override is the run's config now, so a later plain --resume keeps it.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["run"]["total_steps"] == step + 20
    # A resume keeps the run's simulator; asking for another is refused, before anything loads.
    refused = subprocess.run(TRAIN + ["--run-dir", str(run_dir), "--resume", "--env", "igibson"], cwd=REPO_ROOT,
                             env=_env(), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "trains in embedded; --env igibson" in refused.stderr, refused.stderr
    assert int(load_checkpoint(run_dir)["step"]) == step + 20

    # A new actor on the same world model and replay: another architecture, the rest continues.
    output = subprocess.run(TRAIN + ["--run-dir", str(run_dir), "--resume", "--reset-actor",
                                     "--set", "agent.behavior.actor_modes=2", "--set", f"run.total_steps={step + 30}",
                                     *TINY], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True, timeout=150)
    assert output.returncode == 0, output.stdout[-2000:] + output.stderr[-2000:]
    reset = load_checkpoint(run_dir)
    assert int(reset["step"]) == step + 30 and int(reset["updates"]) > int(resumed["updates"])
    world_model_keys = [k for k in reset["agent"] if k.startswith("world_model.")]
    assert world_model_keys and all(reset["agent"][k].shape == resumed["agent"][k].shape for k in world_model_keys)
    last_layer = max((k for k in reset["agent"] if k.startswith("behavior.actor.net.") and k.endswith(".weight")),
                     key=lambda k: int(k.split(".")[3]))
    assert reset["agent"][last_layer].shape[0] == 2 * (2 * 2 + 1)   # per mode: mean and std of 2 actions, a weight


def test_igibson_missing_is_a_clear_error(tmp_path):
    pytest.importorskip("gymnasium")
    env = dict(_env(), XDG_CACHE_HOME=str(tmp_path / "cache"))   # where scripts/install_igibson.py never ran
    env.pop("RECORE_NAV_IGIBSON_PYTHON", None)
    result = subprocess.run(TRAIN + ["--env", "igibson", "--config", str(REPO_ROOT / "config/train/smoke.yaml"),
                                     "--run-dir", str(tmp_path / "run")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "iGibson is not installed" in result.stderr and "--env embedded" in result.stderr
    assert "Traceback" not in result.stderr


def test_replay_without_expert_labels_stores_nan_and_loads_old_files(tmp_path):
    replay = EpisodeReplay(capacity=100, image_size=16)
    _fill(replay, [3])                                   # steps without an expert_action key
    labelled = {**_step(16, True, 9.0), "expert_action": np.array([0.5, -0.25], np.float32)}
    replay.add_step(0, labelled, episode_over=True)
    batch = replay.sample(16, 2, np.random.default_rng(0))
    labels = batch["expert_action"].reshape(-1, 2)
    assert np.isnan(labels[batch["reward"].reshape(-1) != 9.0]).all()
    assert (labels[batch["reward"].reshape(-1) == 9.0] == [0.5, -0.25]).all()
    # A replay file from before the key existed loads, its labels missing (NaN).
    replay.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as data:
        np.savez(tmp_path / "old.npz", **{k: data[k] for k in data.files if k != "expert_action"})
    old = EpisodeReplay.load(tmp_path / "old.npz")
    assert old.num_steps == 4 and np.isnan(old.sample(4, 2, np.random.default_rng(0))["expert_action"]).all()


def test_expert_prefill_drives_to_goals_and_labels_every_step():
    """The simulator's expert through a real vector env: episodes end in success, and every
    stored step carries the expert's command for its observation."""
    from recore_nav.sim.factory import make_vector_env
    from training.environments.collector import Collector, ExpertPolicy

    envs = make_vector_env("embedded", num_envs=1, split="train", seed=3, max_steps=400)
    replay = EpisodeReplay(capacity=10_000, image_size=64, max_episode_steps=400)
    try:
        collector = Collector(envs, replay=replay)
        policy = ExpertPolicy(envs.num_envs, noise_std=0.1, rng=np.random.default_rng(0))
        results = []
        for _ in range(1000):
            results += collector.step(policy)
            if len(results) >= 2:
                break
    finally:
        envs.close()
    assert len(results) >= 2 and all(r.success for r in results), results
    batch = replay.sample(8, 16, np.random.default_rng(0))
    assert np.isfinite(batch["expert_action"]).all() and (np.abs(batch["expert_action"]) <= 1).all()
