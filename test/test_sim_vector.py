"""Vectorised collection: PointNavEnvs in spawned processes, batched by gymnasium."""

import numpy as np

from recore_nav.sim import PointNavEnv, make_vector_env


def test_vector_env_returns_batched_observations():
    envs = make_vector_env(2, split="train", seed=10, image_size=32, max_steps=3)
    try:
        obs, info = envs.reset()
        assert obs["rgb"].shape == (2, 32, 32, 3) and obs["rgb"].dtype == np.uint8
        assert obs["depth"].shape == (2, 32, 32, 1) and obs["seg"].shape == (2, 32, 32)
        assert obs["goal"].shape == (2, 3)
        assert not np.array_equal(obs["rgb"][0], obs["rgb"][1])          # different seeds, scenes
        # Env i is seeded with seed + i: the same as a single env in this process.
        single, _ = PointNavEnv(image_size=32, seed=11).reset()
        np.testing.assert_array_equal(obs["rgb"][1], single["rgb"])
        actions = np.array([[1.0, 0.0], [np.nan, 0.0]], np.float32)
        for _ in range(3):
            obs, rewards, terminated, truncated, info = envs.step(actions)
        assert rewards.shape == (2,) and truncated.all()                 # max_steps = 3
        assert info["invalid_actions"].tolist() == [0, 3]
        assert info["robot_pose"].shape == (2, 3)
    finally:
        envs.close()
