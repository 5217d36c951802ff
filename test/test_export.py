"""Export of a run's policy to the bundle the robot runs, and its parity with torch.

The checkpoint comes from the training program's own `Trainer` (smoke config, a few real
updates on replayed simulator-shaped data), the bundle from `training/export_onnx.py`, and the
ONNX side runs through the robot's `PolicyRuntime` (onnxruntime).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recore_nav.bundle import INPUT_NAMES, OUTPUT_NAMES, read_bundle_spec
from recore_nav.policy import PolicyRuntime
from training.config import load_config
from training.export_onnx import export_bundle
from training.trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run directory with a checkpoint after a few real updates and one evaluation record."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = load_config(REPO_ROOT / "config/train/smoke.yaml")
    trainer = Trainer(cfg, run_dir, "embedded", resume=False)
    rng = np.random.default_rng(0)
    size = cfg.env.image_size
    for t in range(40):   # one 40-step episode of varied frames, goals and actions
        trainer.replay.add_step(0, {
            "rgb": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            "depth": rng.uniform(0.2, 5.0, (size, size, 1)).astype(np.float32),
            "seg": rng.integers(0, 4, (size, size), dtype=np.uint8),
            "goal": np.array([3.0 - 0.05 * t, 0.8, 0.6], np.float32),
            "action": rng.uniform(-1, 1, 2).astype(np.float32), "reward": np.float32(0.05),
            "is_first": t == 0, "is_terminal": False}, episode_over=t == 39)
    trainer.action_scale = {"max_linear_speed": 0.4, "max_angular_speed": 1.2}   # as the env reported
    trainer.update_credit = 5.0
    trainer._train()
    trainer.step = 40
    trainer.write_metrics({"kind": "eval", "split": "train", "success_rate": 0.25, "spl": 0.2, "episodes": 4})
    trainer.write_metrics({"kind": "eval", "split": "ood", "success_rate": 0.5, "spl": 0.4, "episodes": 4})
    trainer.save()
    return run_dir


def test_export_bundle_matches_torch_over_a_recurrent_rollout(trained_run, tmp_path):
    bundle = tmp_path / "bundle"
    spec = export_bundle(trained_run, bundle)
    assert read_bundle_spec(bundle).onnx_sha256 == spec.onnx_sha256

    state = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    from training.export_onnx import load_agent
    agent, _ = load_agent(trained_run)
    module = agent.policy_step_module().eval()
    runtime = PolicyRuntime(bundle, providers="cpu")
    assert spec.state_size == agent.state_size and state["step"] == 40

    rng = np.random.default_rng(1)
    torch_state = torch.zeros(1, agent.state_size)
    prev_action = torch.zeros(1, 2)
    worst, states_moved = 0.0, 0.0
    for t in range(50):
        rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        bearing = rng.uniform(-np.pi, np.pi)
        goal = np.array([rng.uniform(0.3, 8.0), np.cos(bearing), np.sin(bearing)], np.float32)
        with torch.no_grad():
            action, next_state = module(torch.from_numpy(rgb)[None], torch.from_numpy(goal)[None], prev_action,
                                        torch_state)
        onnx_action = runtime.step(rgb, goal)   # keeps its own state and previous action
        worst = max(worst, float(np.abs(onnx_action - np.clip(action[0].numpy(), -1, 1)).max()))
        states_moved = max(states_moved, float((next_state - torch_state).abs().max()))
        torch_state, prev_action = next_state, action.clamp(-1, 1)
        np.testing.assert_allclose(runtime.state, torch_state[0].numpy(), atol=1e-3)
    print(f"max |action torch - onnxruntime| over 50 steps: {worst:.2e}")
    assert worst < 1e-4, f"torch and onnxruntime actions differ by {worst:.2e}"
    assert states_moved > 1e-3, "the recurrent state must change, or the rollout tests nothing"


def test_bundle_json_states_training_and_latest_evaluation(trained_run, tmp_path):
    bundle = tmp_path / "bundle"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "training/export_onnx.py"), str(trained_run),
                             "--out", str(bundle), "--name", "smoke_policy"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((bundle / "policy.json").read_text())
    assert data["name"] == "smoke_policy"
    assert data["training"]["method"] == "recore_depth" and data["training"]["steps"] == 40
    assert data["training"]["config"]["agent"]["batch_size"] == 4
    assert data["evaluation"]["embedded/ood"]["success_rate"] == 0.5
    assert data["evaluation"]["embedded/train"]["spl"] == 0.2
    assert data["evaluation"]["embedded/train"]["source"] == "training"
    # The limits of the environment the run trained in, not constants of the export program.
    assert (data["max_linear_speed"], data["max_angular_speed"]) == (0.4, 1.2)
    assert list(data["inputs"]) == sorted(INPUT_NAMES) and "next_state" in data["outputs"]
    assert OUTPUT_NAMES == ("action", "next_state")


def test_export_of_a_directory_without_checkpoint_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "training/export_onnx.py"), str(tmp_path),
                             "--out", str(tmp_path / "bundle")], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "no checkpoint" in result.stderr and "Traceback" not in result.stderr
