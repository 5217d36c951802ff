"""The environment factory: one way to make every environment kind, alone or in spawned processes."""

import numpy as np
import pytest

from recore_nav.sim import PointNavEnv, make_env, make_vector_env


def test_vector_env_returns_batched_observations():
    envs = make_vector_env("embedded", num_envs=2, split="train", seed=10, image_size=32, max_steps=3)
    try:
        obs, info = envs.reset()
        assert obs["rgb"].shape == (2, 32, 32, 3) and obs["rgb"].dtype == np.uint8
        assert obs["depth"].shape == (2, 32, 32, 1) and obs["seg"].shape == (2, 32, 32)
        assert obs["goal"].shape == (2, 3)
        assert not np.array_equal(obs["rgb"][0], obs["rgb"][1])          # different seeds, scenes
        # Env i is seeded with seed + i: the same as a single env made by the same factory.
        single, _ = make_env("embedded", image_size=32, seed=11).reset()
        np.testing.assert_array_equal(obs["rgb"][1], single["rgb"])
        actions = np.array([[1.0, 0.0], [np.nan, 0.0]], np.float32)
        for _ in range(3):
            obs, rewards, terminated, truncated, info = envs.step(actions)
        assert rewards.shape == (2,) and truncated.all()                 # max_steps = 3
        assert info["invalid_actions"].tolist() == [0, 3]
        assert info["robot_pose"].shape == (2, 3)
    finally:
        envs.close()


def test_factory_makes_the_embedded_simulator_and_names_what_it_cannot_make():
    env = make_env("embedded", split="ood", image_size=32, seed=0, max_steps=7)
    assert isinstance(env, PointNavEnv) and env.split == "ood" and env.max_steps == 7
    env.close()
    with pytest.raises(ValueError, match="unknown environment 'mujoco'"):
        make_env("mujoco")


def test_igibson_where_it_is_not_installed_says_how_to_install_it(tmp_path, monkeypatch):
    pytest.importorskip("training.environments.igibson")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))   # a machine where scripts/install_igibson.py never ran
    monkeypatch.delenv("RECORE_NAV_IGIBSON_PYTHON", raising=False)
    with pytest.raises(RuntimeError, match="iGibson is not installed: run `python3 scripts/install_igibson.py`"):
        make_vector_env("igibson", num_envs=1)
