"""PointNavEnv on the real MuJoCo simulator and renderer: the environment contract of docs/architecture.md."""

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from recore_nav.geometry import goal_in_robot_frame
from recore_nav.sim import DEPTH_MAX, ENV_ID, LayoutConfig, PointNavEnv, TaskConfig
from recore_nav.sim.layout import Layout, Rect, enclosing_walls
from recore_nav.sim.scene import SEG_FLOOR, SEG_OTHER, SEG_WALL

SIZE = 32
CORRIDOR = Rect(0.0, 0.0, 6.0, 1.2)   # walls centred on the edges: inner faces at x = 0.05, 5.95


def corridor_env(**kwargs) -> PointNavEnv:
    layout = Layout(rooms=(CORRIDOR,), walls=tuple(enclosing_walls(CORRIDOR)))
    return PointNavEnv(image_size=SIZE, fixed_layout=layout, seed=0, **kwargs)


def forward(env, steps, action=(1.0, 0.0)):
    out = None
    for _ in range(steps):
        out = env.step(np.array(action, np.float32))
        if out[2] or out[3]:
            break
    return out


def test_observations_follow_the_contract():
    env = PointNavEnv(image_size=SIZE, seed=1)
    obs, info = env.reset()
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (SIZE, SIZE, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (SIZE, SIZE, 1) and obs["depth"].dtype == np.float32
    assert obs["seg"].shape == (SIZE, SIZE) and obs["seg"].dtype == np.uint8
    assert obs["goal"].shape == (3,) and obs["goal"].dtype == np.float32
    x, y, yaw = env.robot_pose()
    np.testing.assert_allclose(obs["goal"], goal_in_robot_frame(x, y, yaw, *env.goal_position), atol=1e-6)
    assert obs["goal"][0] == pytest.approx(math.dist((x, y), env.goal_position), abs=1e-5)
    assert info["shortest_path_length"] >= 1.0 - 0.05      # min_goal_distance
    assert info["geodesic_distance"] == info["shortest_path_length"]
    for key in ("success", "collision", "collisions", "geodesic_distance", "shortest_path_length",
                "path_length", "spl", "robot_pose", "goal_position", "invalid_actions"):
        assert key in info
    env.close()


def test_depth_is_metric_and_classes_are_labelled():
    env = corridor_env()
    env.reset(options={"start": (2.0, 0.6, 0.0), "goal": (0.6, 0.6)})     # facing the end wall at x = 5.95
    obs, *_ = env.step(np.zeros(2, np.float32))
    centre = SIZE // 2
    assert obs["depth"][centre, centre, 0] == pytest.approx(3.95, abs=0.03)
    assert obs["seg"][centre, centre] == SEG_WALL
    assert obs["seg"][-1, centre] == SEG_FLOOR
    assert obs["seg"][0, centre] == SEG_OTHER            # ceiling
    assert 0.0 < obs["depth"].min() and obs["depth"].max() <= DEPTH_MAX
    env.close()


def test_same_seed_gives_same_episode_and_another_seed_does_not():
    def rollout(seed):
        env = PointNavEnv(image_size=SIZE, seed=seed)
        obs, _ = env.reset()
        actions = np.random.default_rng(0).uniform(-1, 1, (25, 2)).astype(np.float32)
        frames, rewards = [obs], []
        for a in actions:
            obs, reward, *_ = env.step(a)
            frames.append(obs)
            rewards.append(reward)
        env.close()
        return frames, rewards

    frames_a, rewards_a = rollout(3)
    frames_b, rewards_b = rollout(3)
    frames_c, _ = rollout(4)
    assert rewards_a == rewards_b
    for fa, fb in zip(frames_a, frames_b):
        for key in fa:
            np.testing.assert_array_equal(fa[key], fb[key])
    assert not np.array_equal(frames_a[0]["rgb"], frames_c[0]["rgb"])


def test_reset_with_a_seed_is_reproducible_in_one_env():
    env = PointNavEnv(image_size=SIZE)
    first, info_first = env.reset(seed=11)
    env.step(np.array([1.0, 0.5], np.float32))
    env.reset()
    again, info_again = env.reset(seed=11)
    np.testing.assert_array_equal(first["rgb"], again["rgb"])
    np.testing.assert_array_equal(info_first["goal_position"], info_again["goal_position"])
    env.close()


def test_appearance_split_changes_pixels_not_geometry():
    obs = {split: PointNavEnv(split=split, image_size=SIZE, seed=5).reset()[0] for split in ("train", "ood")}
    np.testing.assert_array_equal(obs["train"]["seg"], obs["ood"]["seg"])
    np.testing.assert_allclose(obs["train"]["depth"], obs["ood"]["depth"], atol=1e-4)
    assert np.abs(obs["train"]["rgb"].astype(int) - obs["ood"]["rgb"].astype(int)).mean() > 10


def test_sim2real_shifts_the_camera():
    train, _ = PointNavEnv(split="train", image_size=SIZE, seed=5).reset()
    env = PointNavEnv(split="sim2real", image_size=SIZE, seed=5)
    shifted, _ = env.reset()
    assert 70.0 <= env.model.cam_fovy[0] <= 80.0
    assert not np.array_equal(train["seg"], shifted["seg"])       # narrower field of view
    assert not np.array_equal(train["rgb"], shifted["rgb"])


def test_collision_stops_the_robot_at_the_wall():
    env = corridor_env()
    env.reset(options={"start": (5.0, 0.6, 0.0), "goal": (0.6, 0.6)})
    _, reward, terminated, truncated, info = forward(env, 25)      # 2.5 s at 0.5 m/s: 1.25 m into the wall
    x, y, _ = env.robot_pose()
    face = 5.95 - env.robot.radius
    assert face - 0.03 <= x <= face + 0.01, f"robot at x={x:.3f}, wall face for its centre at {face:.3f}"
    assert abs(y - 0.6) < 0.02
    assert info["collision"] and info["collisions"] >= 10
    assert reward == pytest.approx(-0.1, abs=0.01)                   # stuck: no progress, collision penalty
    assert abs(env.robot_velocity()[0]) < 0.05
    assert not terminated and not truncated


def test_reaching_the_goal_terminates_with_success():
    env = corridor_env()
    env.reset(options={"start": (2.0, 0.6, 0.0), "goal": (3.5, 0.6)})
    total, steps = 0.0, 0
    while True:
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        total, steps = total + reward, steps + 1
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"]
    assert math.dist(env.robot_pose()[:2], (3.5, 0.6)) < 0.36
    assert reward > 10.0 and total == pytest.approx(10.0 + 1.5 - info["geodesic_distance"], abs=0.05)
    assert info["shortest_path_length"] == pytest.approx(1.5, abs=0.06)
    assert info["path_length"] == pytest.approx(1.5 - math.dist(env.robot_pose()[:2], (3.5, 0.6)), abs=0.05)
    assert info["spl"] == pytest.approx(1.0)
    assert info["collisions"] == 0 and steps < 40


def test_max_steps_truncates():
    env = corridor_env(max_steps=5)
    env.reset(options={"start": (2.0, 0.6, 0.0), "goal": (4.0, 0.6)})
    for k in range(1, 6):
        _, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        assert not terminated
        assert truncated == (k == 5)
    assert info["spl"] == 0.0 and not info["success"]


def test_nan_action_is_rejected_and_counted():
    env = corridor_env()
    env.reset(options={"start": (2.0, 0.6, 0.0), "goal": (4.0, 0.6)})
    pose = env.robot_pose()
    _, reward, _, _, info = env.step(np.array([np.nan, 0.3], np.float32))
    assert info["invalid_actions"] == 1 and env.invalid_actions == 1
    assert np.all(np.isfinite(env.data.qpos)) and np.all(np.isfinite(env.data.ctrl))
    np.testing.assert_allclose(env.robot_pose(), pose, atol=1e-9)
    assert np.isfinite(reward)
    _, _, _, _, info = env.step(np.array([np.inf, -np.inf], np.float32))
    assert info["invalid_actions"] == 2
    np.testing.assert_allclose(env.robot_pose(), pose, atol=1e-9)


def test_out_of_range_action_is_clipped():
    env = corridor_env()
    env.reset(options={"start": (1.0, 0.6, 0.0), "goal": (5.0, 0.6)})
    for _ in range(5):
        env.step(np.array([7.0, 0.0], np.float32))
    assert env.clipped_actions == 5
    assert env.robot_velocity()[0] == pytest.approx(env.max_linear_speed, abs=0.02)
    with pytest.raises(ValueError):
        env.step(np.zeros(3, np.float32))


def test_robot_velocity_follows_the_scaled_action():
    env = corridor_env()
    env.reset(options={"start": (1.0, 0.6, 0.0), "goal": (5.0, 0.6)})
    for _ in range(3):
        env.step(np.array([0.5, -0.4], np.float32))
    v, w = env.robot_velocity()
    assert v == pytest.approx(0.5 * env.max_linear_speed, abs=0.01)
    assert w == pytest.approx(-0.4 * env.max_angular_speed, abs=0.02)
    assert env.robot_pose()[2] == pytest.approx(-0.4 * env.max_angular_speed * 3 * env.control_dt, abs=0.03)


def test_renders_the_same_with_osmesa():
    """MUJOCO_GL=osmesa in a fresh process gives the same observation as this process's EGL."""
    script = ("import numpy as np; from recore_nav.sim import PointNavEnv; "
              "o, _ = PointNavEnv(image_size=32, seed=5).reset(); "
              "print(int(o['rgb'].astype(np.int64).sum()), int(o['seg'].astype(np.int64).sum()), "
              "float(o['depth'].sum()))")
    env_vars = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa",
                "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", script], env=env_vars, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rgb_sum, seg_sum, depth_sum = out.stdout.split()
    obs, _ = PointNavEnv(image_size=32, seed=5).reset()
    assert int(rgb_sum) == int(obs["rgb"].astype(np.int64).sum())
    assert int(seg_sum) == int(obs["seg"].astype(np.int64).sum())
    assert float(depth_sum) == pytest.approx(float(obs["depth"].sum()), rel=1e-4)


def test_shortest_path_expert_reaches_goals():
    env = PointNavEnv(image_size=SIZE, seed=2)
    for _ in range(3):
        env.reset()
        while True:
            _, _, terminated, truncated, info = env.step(env.oracle_action())
            if terminated or truncated:
                break
        assert info["success"], info
        assert info["spl"] > 0.8
    env.close()


def test_passes_the_gymnasium_env_checker():
    env = gym.make(ENV_ID, image_size=SIZE, render_mode="rgb_array", disable_env_checker=True).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # a checker warning is a failure here
        check_env(env, skip_render_check=False)
    frame = env.render()
    assert frame.ndim == 3 and frame.dtype == np.uint8
    env.close()


def test_bad_constructor_arguments_raise():
    with pytest.raises(ValueError):
        PointNavEnv(split="night")
    with pytest.raises(ValueError):
        PointNavEnv(layout_config=LayoutConfig(num_rooms=(2, 2), room_size=(3.0, 3.0)),
                    task_config=TaskConfig(min_goal_distance=50.0, max_goal_distance=60.0))
    with pytest.raises(ValueError):
        TaskConfig(min_goal_distance=3.0, max_goal_distance=2.0)
