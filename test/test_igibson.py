"""iGibson behind the environment contract: the same tests the embedded simulator passes, the same
episodes from the same seeds, this project's scenes loaded as iGibson sees them, and training and
evaluation with `--env igibson`. Real iGibson 2.2.2 in its own venv (`scripts/install_igibson.py`,
which `bash scripts/bootstrap.sh test` builds); where it is not built these tests skip, saying how.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

from recore_nav.sim.factory import make_env, make_vector_env
from recore_nav.task import DEPTH_MAX, NUM_SEG_CLASSES

REPO_ROOT = Path(__file__).resolve().parents[1]

try:
    from training.environments.igibson import IGibsonMissing, igibson_python
    igibson_python()
    SKIP = None
except IGibsonMissing as err:
    SKIP = str(err)
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")
CELL = 0.1      # m: both simulators' traversability resolution


@pytest.fixture(scope="module")
def env():
    env = make_env("igibson", split="train", image_size=64, seed=3)
    yield env
    env.close()


def test_observations_follow_the_contract(env) -> None:
    obs, info = env.reset(seed=3)
    assert obs["rgb"].shape == (64, 64, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (64, 64, 1) and obs["depth"].dtype == np.float32
    assert 0.0 < obs["depth"].min() and obs["depth"].max() <= DEPTH_MAX
    assert obs["seg"].shape == (64, 64) and obs["seg"].max() < NUM_SEG_CLASSES
    assert obs["goal"].shape == (3,) and obs["goal"][0] == pytest.approx(
        math.dist(info["robot_pose"][:2], info["goal_position"]), abs=1e-3)
    assert info["camera_vertical_fov"] == pytest.approx(math.pi / 2)
    assert not any(np.isnan(info["expert_action"]))


def test_the_same_seed_gives_the_same_episode_in_both_simulators(env) -> None:
    embedded = make_env("embedded", split="train", image_size=64, seed=3)
    for seed in (3, 11, 12):
        obs_i, info_i = env.reset(seed=seed)
        obs_e, info_e = embedded.reset(seed=seed)
        assert np.allclose(info_i["robot_pose"], info_e["robot_pose"], atol=0.01)
        assert np.array_equal(info_i["goal_position"], info_e["goal_position"])
        assert info_i["shortest_path_length"] == pytest.approx(info_e["shortest_path_length"], abs=0.02)
        # Same room, same camera: depth agrees where both see a surface within reach.
        near = (obs_i["depth"] < 3.0) & (obs_e["depth"] < 3.0)
        assert near.mean() > 0.2
        assert np.median(np.abs(obs_i["depth"] - obs_e["depth"])[near]) < 0.1
        # and the classes (iGibson's from the scene's geometry) agree on most pixels.
        assert (obs_i["seg"] == obs_e["seg"]).mean() > 0.9
    embedded.close()


def test_the_expert_reaches_the_goal_and_the_episode_ends_with_success(env) -> None:
    obs, info = env.reset(seed=5)
    for _ in range(500):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if terminated or truncated:
            break
    assert terminated and info["success"]
    assert math.dist(info["robot_pose"][:2], info["goal_position"]) < env.task.success_radius
    assert 0.5 < info["spl"] <= 1.0


def test_a_wall_stops_the_robot_and_counts_collisions(env) -> None:
    env.reset(seed=11)        # starts facing a wall 0.4 m ahead (see the episode test's depth)
    collisions = 0
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([1.0, 0.0], np.float32))
        collisions = info["collisions"]
    assert collisions >= 5


def test_a_nan_action_is_rejected_and_counted(env) -> None:
    env.reset(seed=3)
    x0 = env.robot_pose()
    _, _, _, _, info = env.step(np.array([math.nan, 0.0], np.float32))
    assert info["invalid_actions"] == 1
    assert math.dist(env.robot_pose()[:2], x0[:2]) < 0.01


def test_passes_the_gymnasium_env_checker(env) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(env, skip_render_check=True)


def test_the_scene_iGibson_loads_has_our_traversability_and_geodesics(env) -> None:
    for seed in (3, 21):
        env.reset(seed=seed)
        grid = env.traversability
        free = env.igibson_traversable_points()
        # Every cell iGibson calls free is one of ours, within a cell, and the other way round.
        ours = np.array([grid.cell_center(i, j) for i, j in zip(*np.nonzero(grid.reachable))])
        from scipy.spatial import cKDTree
        assert cKDTree(ours).query(free)[0].max() <= CELL * 1.01
        assert cKDTree(free).query(ours)[0].max() <= CELL * 1.01
        # Geodesic distances by iGibson's own A*: its graph is 8-connected (ours 16), so a path
        # with turns is up to 8.3% longer; never shorter by more than a cell.
        rng = np.random.default_rng(seed)
        pairs = [(tuple(ours[a]), tuple(ours[b])) for a, b in rng.integers(len(ours), size=(12, 2))]
        # iGibson's cells are corners: query them half a cell in, where world_to_map cannot round.
        theirs = env.igibson_shortest_path_lengths([((a[0] + 0.05, a[1] + 0.05), (b[0] + 0.05, b[1] + 0.05))
                                                    for a, b in pairs])
        for (a, b), length in zip(pairs, theirs):
            embedded = grid.geodesic_field(*b).distance_at(*a)
            assert embedded - CELL <= length <= embedded * 1.084 + CELL, (a, b, embedded, length)


def test_vector_env_of_igibson_workers_steps_in_parallel() -> None:
    envs = make_vector_env("igibson", num_envs=2, split="ood", seed=7)
    try:
        obs, info = envs.reset()
        assert obs["rgb"].shape == (2, 64, 64, 3)
        obs, reward, terminated, truncated, info = envs.step(np.zeros((2, 2), np.float32))
        assert obs["depth"].shape == (2, 64, 64, 1) and reward.shape == (2,)
    finally:
        envs.close()


def test_train_and_evaluate_with_env_igibson(tmp_path: Path) -> None:
    """A few training steps in iGibson (the smoke recipe, short episodes), its bundle exported and
    evaluated there: the training and evaluation programs take `--env igibson` as they are."""
    run_dir = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "train_igibson.py"), "--env", "igibson",
         "--config", str(REPO_ROOT / "config/train/smoke.yaml"), "--run-dir", str(run_dir),
         "--set", "run.total_steps=80", "--set", "env.max_episode_steps=30", "--set", "env.eval_splits=[train]",
         "--set", "run.eval_episodes=1", "--set", "run.prefill_steps=40", "--set", "run.log_every=20",
         "--set", "run.train_ratio=32", "--threads", "1"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [m["model/loss"] for m in metrics if "model/loss" in m]
    assert losses and all(math.isfinite(v) for v in losses)
    evaluations = [m for m in metrics if m.get("kind") == "eval"]
    assert evaluations and "success_rate" in evaluations[-1]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["env"]["name"] == "igibson"

    bundle = tmp_path / "bundle"
    subprocess.run([sys.executable, str(REPO_ROOT / "training" / "export_onnx.py"), str(run_dir), "--out", str(bundle)],
                   check=True, capture_output=True, timeout=300, cwd=REPO_ROOT)
    evaluation = subprocess.run([sys.executable, str(REPO_ROOT / "training" / "evaluate.py"), str(bundle), "--env",
                                 "igibson", "--episodes", "2", "--workers", "1", "--videos", "1",
                                 "--out", str(tmp_path / "eval")], capture_output=True, text=True, timeout=900,
                                cwd=REPO_ROOT)
    assert evaluation.returncode == 0, evaluation.stdout[-2000:] + evaluation.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["episodes"] == 2


def test_gym_env_contract_spaces(env) -> None:
    assert isinstance(env.observation_space, gym.spaces.Dict)
    assert env.action_space.shape == (2,)
