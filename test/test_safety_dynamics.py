"""A real base's dynamics in the simulator (command latency, acceleration limits), and evaluation
through the navigation node's own controller and monitor, on the real simulator with real ONNX
bundles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from onnx_policies import write_goal_seeking_bundle

from conftest import REPO_ROOT
from recore_nav.node_parameters import read_parameters_file
from recore_nav.sim.dynamics import BaseDynamics
from recore_nav.sim.factory import make_env
from recore_nav.sim.layout import Layout, Rect, enclosing_walls
from training import evaluate
from training.evaluation.node_policy import NodePolicy

HALL = Rect(0.0, 0.0, 8.0, 3.0)
FULL_SPEED = np.array([1.0, 0.0], np.float32)


def hall_env(dynamics: BaseDynamics | None):
    layout = Layout(rooms=(HALL,), walls=tuple(enclosing_walls(HALL)))
    env = make_env("embedded", fixed_layout=layout, seed=0, image_size=64, dynamics=dynamics)
    env.reset(seed=5, options={"start": (1.0, 1.5, 0.0), "goal": (7.0, 1.5)})
    return env


def travel(env, actions) -> list[float]:
    """x after each action."""
    xs = []
    for action in actions:
        _, _, _, _, info = env.step(action)
        xs.append(float(info["robot_pose"][0]))
    return xs


def test_latency_delays_the_command_by_that_much_of_a_step() -> None:
    immediate = np.diff([1.0] + travel(hall_env(None), [FULL_SPEED] * 3))
    half_late = np.diff([1.0] + travel(hall_env(BaseDynamics(latency=(0.05, 0.05))), [FULL_SPEED] * 3))
    step_late = np.diff([1.0] + travel(hall_env(BaseDynamics(latency=(0.1, 0.1))), [FULL_SPEED] * 3))
    assert immediate[1] == pytest.approx(0.05, abs=0.003)              # 0.5 m/s for 0.1 s
    assert half_late[0] == pytest.approx(0.5 * immediate[0], abs=0.006)
    assert step_late[0] == pytest.approx(0.0, abs=1e-3)
    assert step_late[1] == pytest.approx(immediate[0], abs=0.004)
    assert step_late[2] == pytest.approx(immediate[1], abs=0.003)


def test_acceleration_limits_ramp_speeding_up_and_slowing_down() -> None:
    env = hall_env(BaseDynamics(max_linear_accel=1.0, max_angular_accel=3.0))
    xs = travel(env, [FULL_SPEED] * 5 + [np.zeros(2, np.float32)] * 5)
    # 1 m/s^2 from rest to 0.5 m/s takes 0.5 s: 0.125 m (0.25 m unlimited), and as long to stop again.
    assert xs[4] - 1.0 == pytest.approx(0.125, abs=0.01)
    assert xs[9] - xs[4] == pytest.approx(0.125, abs=0.01)
    speeds = np.diff(xs) / 0.1
    assert np.all(np.abs(np.diff(speeds)) <= 0.1 + 0.02)              # never more than 1 m/s^2 (plus the servo)


def test_latency_is_drawn_per_episode_and_reproducible_by_seed() -> None:
    env = hall_env(BaseDynamics(latency=(0.05, 0.1)))
    latencies = []
    for seed in (1, 2, 3, 1):
        _, info = env.reset(seed=seed)
        latencies.append(info["command_latency"])
    assert all(0.05 <= latency <= 0.1 for latency in latencies)
    assert latencies[0] == latencies[3] and len(set(latencies)) == 3
    assert env.step(np.array([math.nan, 0.0]))[4]["invalid_actions"] == 1     # still the environment's to refuse


def test_bad_dynamics_are_refused() -> None:
    with pytest.raises(ValueError, match="latency"):
        BaseDynamics(latency=(0.1, 0.05))
    with pytest.raises(ValueError, match="acceleration"):
        BaseDynamics(max_linear_accel=0.0)


def test_the_evaluation_loop_feeds_the_command_sent_back_to_the_policy(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "echo", echo_prev_action=True)
    parameters = read_parameters_file(REPO_ROOT / "config" / "robot.yaml")
    policy = NodePolicy(bundle, parameters)
    env = hall_env(BaseDynamics(latency=(0.05, 0.1)))
    obs, info = env.reset(seed=5, options={"start": (1.0, 1.5, 0.0), "goal": (7.0, 2.5)})
    policy.reset()
    sent = []
    for _ in range(5):
        action = policy.act(obs, info)
        assert policy.runtime.state[:2] == pytest.approx(sent[-1] if sent else [0.0, 0.0], abs=1e-6)
        sent.append(action)
        obs, _, _, _, info = env.step(action)
    # robot.yaml's 1 m/s^2 limit: 0.1 m/s more each step, 0.2 in the action's units; the policy asked 1.
    assert [round(float(a[0]), 3) for a in sent] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert policy.statuses["navigating"] == 5


def test_evaluate_through_the_node_with_robot_dynamics_writes_what_it_ran(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "goal_seeking")
    out = tmp_path / "eval"
    code = evaluate.main([str(bundle), "--episodes", "2", "--max-steps", "40", "--workers", "1", "--videos", "0",
                          "--node-params", str(REPO_ROOT / "config" / "sim.yaml"), "--node-param", "steer_limit=1.5",
                          "--latency", "0.05", "0.1", "--base-accel", "1.0", "3.0", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dynamics"] == {"latency": [0.05, 0.1], "max_linear_accel": 1.0, "max_angular_accel": 3.0}
    node = summary["navigation_node"]
    assert node["parameters"]["collision_monitor"] is True and node["parameters"]["steer_limit"] == 1.5
    lengths = sum(episode["length"] for episode in summary["per_episode"]["goal_seeking_test"])
    assert sum(node["status_steps"].values()) == lengths
    assert set(node["status_steps"]) <= {"navigating", "slowed: obstacle", "steered: obstacle", "stopped: obstacle",
                                         "stopped: reverse motion not monitored"}


def test_bad_node_parameters_are_a_one_line_error(tmp_path: Path, capsys) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "goal_seeking")
    code = evaluate.main([str(bundle), "--episodes", "1", "--node-params", str(REPO_ROOT / "config" / "sim.yaml"),
                          "--node-param", "stop_distance=0.9"])
    assert code == 2
    assert "stop_distance <= slowdown_distance" in capsys.readouterr().err
