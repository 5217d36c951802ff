"""Offline datasets: the file format, its refusals, and every generator's small datasets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT
from training.data.datasets import (DatasetBuilder, DatasetError, OfflineDataset, describe, load_dataset,
                                    load_datasets, save_dataset)


def arrays(lengths=(3, 2), images: bool = False) -> dict[str, np.ndarray]:
    n = sum(lengths)
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, np.float32)
    terminals[np.cumsum(lengths) - 1] = 1.0
    out = {"observations": rng.normal(size=(n, 3)).astype(np.float32),
           "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32), "terminals": terminals,
           "goal": np.full((n, 3), np.nan, np.float32), "robot_pose": rng.normal(size=(n, 3)).astype(np.float32)}
    if images:
        out["rgb"] = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        out["depth"] = rng.uniform(0, 10, (n, 8, 8, 1)).astype(np.float16)
    return out


def test_round_trip_keeps_every_array_and_derives_valids_as_ogbench(tmp_path: Path):
    original = arrays(images=True)
    path = save_dataset(tmp_path / "d.npz", original)
    dataset = load_dataset(path)
    for key, value in original.items():
        np.testing.assert_array_equal(getattr(dataset, key), value)
        assert getattr(dataset, key).dtype == value.dtype
    assert dataset.size == 5 and dataset.num_trajectories == 2
    np.testing.assert_array_equal(dataset.starts, [0, 3])
    np.testing.assert_array_equal(dataset.ends, [2, 4])
    # OGBench's compact loader: valids = 1 - terminals; the last two states of a trajectory terminal.
    np.testing.assert_array_equal(dataset.valids, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(dataset.ogbench_terminals, [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(dataset.trajectory_end(np.arange(5)), [2, 2, 2, 4, 4])
    line = describe(dataset)
    assert "2 trajectories, 5 steps" in line and "rgb[8, 8, 3]" in line and str(path) in line
    assert not list(tmp_path.glob(".*tmp")), "the temporary file was left behind"


def test_several_files_load_as_one_dataset_in_order(tmp_path: Path):
    first, second = arrays((3, 2), images=True), arrays((4,), images=True)
    paths = [save_dataset(tmp_path / "a.npz", first), save_dataset(tmp_path / "b.npz", second)]
    dataset = load_datasets(paths)
    assert dataset.size == 9 and dataset.num_trajectories == 3
    np.testing.assert_array_equal(dataset.starts, [0, 3, 5])
    np.testing.assert_array_equal(dataset.ends, [2, 4, 8])
    for key in first:
        np.testing.assert_array_equal(getattr(dataset, key), np.concatenate([first[key], second[key]]))
    assert dataset.source == f"{paths[0]} + {paths[1]}"

    no_images = save_dataset(tmp_path / "c.npz", arrays((2,)))
    with pytest.raises(DatasetError, match=r"c\.npz: keys .* differ from .*a\.npz"):
        load_datasets([paths[0], no_images])
    small = arrays((2,), images=True)
    small["rgb"] = small["rgb"][:, :4, :4]
    small["depth"] = small["depth"][:, :4, :4]
    with pytest.raises(DatasetError, match=r"d\.npz: rgb has per-step shape \[4, 4, 3\]"):
        load_datasets([paths[0], save_dataset(tmp_path / "d.npz", small)])


def test_ogbench_bool_terminals_are_read(tmp_path: Path):
    data = arrays()
    data["terminals"] = data["terminals"].astype(bool)
    np.savez(tmp_path / "og.npz", **data)
    assert load_dataset(tmp_path / "og.npz").terminals.dtype == np.float32


@pytest.mark.parametrize("change, reason", [
    (lambda d: d.pop("actions"), "missing key(s) actions"),
    (lambda d: d.update(actions=d["actions"].astype(np.float64)), "actions has dtype float64"),
    (lambda d: d.update(observations=d["observations"][:, 0]), "observations has shape (5,)"),
    (lambda d: d.update(rgb=np.zeros((5, 8, 8), np.uint8)), "rgb has shape (5, 8, 8)"),
    (lambda d: d.update(goal=d["goal"][:4]), "lengths disagree"),
    (lambda d: d["actions"].__setitem__((1, 0), np.nan), "actions hold non-finite values (first at step 1)"),
    (lambda d: d["actions"].__setitem__((3, 1), 1.5), "actions outside [-1, 1] (first at step 3)"),
    (lambda d: d["terminals"].__setitem__(4, 0.0), "no terminal at the last step"),
    (lambda d: d["terminals"].__setitem__(0, 0.5), "terminals hold values other than 0 and 1"),
])
def test_malformed_datasets_are_refused_with_their_reason(tmp_path: Path, change, reason):
    data = arrays()
    change(data)
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    with pytest.raises(DatasetError) as err:
        load_dataset(path)
    message = str(err.value)
    assert reason in message and message.startswith(str(path)) and "\n" not in message
    with pytest.raises(DatasetError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        save_dataset(tmp_path / "never.npz", data)
    assert not (tmp_path / "never.npz").exists()


def test_unreadable_files_are_refused(tmp_path: Path):
    (tmp_path / "text.npz").write_text("not a dataset")
    np.save(tmp_path / "single.npy", np.zeros(3))
    good = save_dataset(tmp_path / "good.npz", arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.npz"   # one stored byte flipped: the member's CRC no longer matches
    raw = bytearray(good.read_bytes())
    raw[raw.find(arrays()["observations"].tobytes()) + 5] ^= 0xFF
    corrupt.write_bytes(bytes(raw))
    for path, reason in [(tmp_path / "text.npz", "not an .npz (zip) archive"),
                         (tmp_path / "single.npy", "not an .npz (zip) archive"),
                         (truncated, "unreadable .npz archive"), (corrupt, "unreadable .npz archive"),
                         (tmp_path / "absent.npz", "no such file")]:
        with pytest.raises(DatasetError, match="^" + str(path) + ": " + reason.replace("(", r"\(").replace(")", r"\)")):
            load_dataset(path)


def test_save_refuses_unknown_keys_and_keeps_the_old_file(tmp_path: Path):
    path = save_dataset(tmp_path / "d.npz", arrays())
    before = path.read_bytes()
    with pytest.raises(DatasetError, match="unknown key"):
        save_dataset(path, {**arrays(), "qpos": np.zeros((5, 2), np.float32)})
    assert path.read_bytes() == before


def test_builder_grows_and_leaves_an_unfinished_trajectory_out():
    builder = DatasetBuilder(capacity=2)
    for trajectory in range(3):
        for t in range(3):
            builder.append(observations=np.full(2, trajectory, np.float32), actions=np.zeros(2, np.float32))
        if trajectory < 2:
            builder.end_trajectory()
    dataset = OfflineDataset.from_arrays(builder.arrays())
    assert dataset.size == 6 and dataset.num_trajectories == 2
    np.testing.assert_array_equal(dataset.observations[:, 0], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="differ"):
        builder.append(observations=np.zeros(2, np.float32))


# ---- generators --------------------------------------------------------------------------------
def check_generated(generated, steps: int, episodes: int) -> OfflineDataset:
    dataset = OfflineDataset.from_arrays(generated.arrays)
    assert dataset.num_trajectories == episodes
    lengths = dataset.ends - dataset.starts + 1
    assert np.all(lengths >= 2) and np.all(lengths <= steps)
    assert dataset.terminals[-1] == 1.0 and dataset.terminals.sum() == episodes
    return dataset


@pytest.mark.parametrize("dataset_type", ["navigate", "stitch", "explore"])
def test_pointmaze_generators_make_valid_datasets(dataset_type):
    from training.data.generators import pointmaze

    generated = pointmaze.generate(dataset_type, "medium", episodes=3, steps=60, seed=1, progress=False)
    dataset = check_generated(generated, 60, 3)
    assert dataset.size == 180 and dataset.observations.shape == (180, 2)   # OGBench's fixed-length episodes
    # The goal is the task's (distance, cos, sin); explore has none.
    assert np.all(np.isnan(dataset.goal)) == (dataset_type == "explore")
    assert np.abs(np.diff(dataset.observations, axis=0)).max() > 0.0   # the point moves
    again = pointmaze.generate(dataset_type, "medium", episodes=3, steps=60, seed=1, progress=False)
    np.testing.assert_array_equal(again.arrays["observations"], generated.arrays["observations"])


def test_pointmaze_navigate_expert_reaches_its_goals():
    from training.data.generators import pointmaze

    generated = pointmaze.generate("navigate", "large", episodes=2, steps=1001, seed=0, progress=False)
    check_generated(generated, 1001, 2)
    # Noisy expert, OGBench's noise 0.5: several goals reached per 1,001-step episode.
    assert generated.stats["goals_reached"] >= 6 and generated.stats["episodes_reaching_goal"] == 2
    distance = generated.arrays["goal"][:, 0]
    arrivals = np.flatnonzero(np.diff(distance) > 2.0)   # the distance jumps where a new goal was drawn
    assert len(arrivals) >= 5
    # ... one step after the point came within OGBench's goal tolerance (1.0) of the old goal.
    assert np.median(distance[arrivals]) < 1.3


def test_pointmaze_stitch_goals_are_four_cells_away():
    from training.data.generators.pointmaze import cells_at_distance, free_and_vertex_cells

    maze = np.ones((5, 7), int)
    maze[1, 1:6] = 0          # a corridor of five cells
    maze[2:4, 3] = 0          # and a branch down from its middle
    assert sorted(cells_at_distance(maze, (1, 1), 4)) == [(1, 5), (3, 3)]
    assert sorted(cells_at_distance(maze, (1, 1), 2)) == [(1, 3)]
    assert sorted(cells_at_distance(maze, (1, 2), 3)) == [(1, 5), (3, 3)]
    free, vertex = free_and_vertex_cells(maze)
    assert len(free) == 7 and (1, 2) not in vertex and (1, 3) in vertex and (1, 1) in vertex and (2, 3) not in vertex


@pytest.mark.parametrize("dataset_type", ["navigate", "stitch", "explore"])
def test_embedded_generators_make_valid_image_datasets(dataset_type):
    from training.data.generators import embedded

    generated = embedded.generate(dataset_type, episodes=2, steps=30, seed=5, image_size=32, depth=True,
                                  progress=False)
    dataset = check_generated(generated, 30, 2)
    assert dataset.rgb.shape == (dataset.size, 32, 32, 3) and dataset.rgb.dtype == np.uint8
    assert dataset.depth.dtype == np.float16 and float(dataset.depth.max()) <= 10.0
    np.testing.assert_array_equal(dataset.observations, dataset.robot_pose)
    assert np.all(np.isnan(dataset.goal)) == (dataset_type == "explore")
    if dataset_type == "explore":    # goal-agnostic: no episode ends early at the environment's goal
        np.testing.assert_array_equal(dataset.ends - dataset.starts + 1, [30, 30])
    else:
        assert np.all(np.isfinite(dataset.goal))
        assert np.all(dataset.goal[:, 0] <= (10.5 if dataset_type == "navigate" else 3.5))


def test_embedded_navigate_expert_mostly_succeeds():
    from training.data.generators import embedded

    generated = embedded.generate("navigate", episodes=4, steps=400, seed=11, image_size=16, progress=False)
    assert generated.stats["success_rate"] >= 0.75
    dataset = OfflineDataset.from_arrays(generated.arrays)
    # A successful episode's last stored step is within the success radius of its goal.
    assert np.sum(dataset.goal[dataset.ends, 0] < 0.36) >= 3


def test_embedded_generator_refuses_beyond_its_memory_budget():
    from training.data.generators import embedded

    with pytest.raises(ValueError, match="over the 1 GB budget"):
        embedded.generate("explore", episodes=10_000, steps=1_000, max_gb=1.0, progress=False)
    with pytest.raises(ValueError, match="evaluation seeds"):
        embedded.generate("explore", episodes=10, steps=10, seed=999_995, progress=False)


def test_generate_command_writes_a_loadable_dataset(tmp_path: Path):
    out = tmp_path / "pm.npz"
    result = subprocess.run([sys.executable, "-m", "training.data.generate", "pointmaze-medium-explore", "--out",
                             str(out), "--episodes", "2", "--steps", "20"], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 trajectories, 40 steps" in result.stdout
    assert load_dataset(out).size == 40
    refused = subprocess.run([sys.executable, "-m", "training.data.generate", "embedded-navigate", "--out",
                              str(tmp_path / "big.npz"), "--episodes", "100000"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "budget" in refused.stderr and not (tmp_path / "big.npz").exists()
