"""Offline CRL and WM-CRL: goal sampling, the world model's target schedule, what each
integration strategy feeds the networks, short runs whose losses fall, resume, and export to a
policy bundle the robot's runtime runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recore_nav.policy import PolicyRuntime
from training.data.datasets import OfflineDataset, save_dataset
from training.data.goal_sampling import GoalSampler, GoalSamplingConfig
from training.export_onnx import export_bundle
from training.methods.crl import CRLConfig
from training.methods.wm_crl import LatentModel, WMCRLAgent, WorldModelConfig
from training.offline import relative_goals

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = ["agent.batch_size=64", "agent.hidden=[64,64]", "agent.latent_dim=32", "agent.cnn_depth=8",
        "world_model.cnn_depth=8", "world_model.embed_dim=32", "world_model.sa_dim=32", "world_model.hidden=[64]"]

torch.set_num_threads(1)


def trajectories(lengths: list[int], rng: np.random.Generator, image_size: int = 0) -> dict[str, np.ndarray]:
    """Random-walk trajectories back to back: xy observations, poses, actions, terminals."""
    n = sum(lengths)
    actions = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    terminals = np.zeros(n, np.float32)
    terminals[np.cumsum(lengths) - 1] = 1.0
    poses = np.zeros((n, 3), np.float32)
    for i in range(1, n):
        if terminals[i - 1]:
            continue
        yaw = poses[i - 1, 2] + 0.15 * actions[i - 1, 1]
        poses[i] = (poses[i - 1, 0] + 0.05 * actions[i - 1, 0] * np.cos(yaw),
                    poses[i - 1, 1] + 0.05 * actions[i - 1, 0] * np.sin(yaw), yaw)
    arrays = {"observations": poses[:, :2].copy(), "actions": actions, "terminals": terminals, "robot_pose": poses}
    if image_size:
        arrays["rgb"] = rng.integers(0, 256, (n, image_size, image_size, 3), dtype=np.uint8)
    return arrays


def test_geometric_goals_follow_their_distribution_within_the_trajectory() -> None:
    dataset = OfflineDataset.from_arrays(trajectories([4000, 50], np.random.default_rng(0)))
    sampler = GoalSampler(dataset.ogbench_terminals, dataset.valids, GoalSamplingConfig(discount=0.9))
    rng = np.random.default_rng(1)
    states = np.full(20000, 100)          # far from the first trajectory's end: offsets are not capped
    offsets = sampler.goals(states, 0.0, 1.0, geometric=True, rng=rng) - states
    # Geometric with p = 0.1 on 1, 2, ...: P(k) = 0.9^(k-1) 0.1, mean 10.
    assert offsets.min() >= 1 and abs(offsets.mean() - 10.0) < 0.3
    for k in (1, 2, 5):
        assert abs(np.mean(offsets == k) - 0.9 ** (k - 1) * 0.1) < 0.01
    # Near its end a trajectory caps the goal at its last goal-able step, never the next trajectory.
    near_end = np.full(5000, 3990)
    goals = sampler.goals(near_end, 0.0, 1.0, geometric=True, rng=rng)
    assert goals.max() == 3998 and goals.min() >= 3991
    uniform = sampler.goals(near_end, 0.0, 1.0, geometric=False, rng=rng)
    assert uniform.min() >= 3991 and uniform.max() <= 3998
    batch = sampler.sample(512, rng)
    # Goals lie ahead in the same trajectory (at its goal-able end, OGBench's cap, the state itself).
    assert dataset.valids[batch.states].all() and (batch.value_goals >= batch.states).all()
    assert (dataset.trajectory_end(batch.value_goals) == dataset.trajectory_end(batch.states)).all()
    assert (batch.value_goals > batch.states)[batch.states < dataset.trajectory_end(batch.states) - 1].all()


def test_target_encoder_copies_on_schedule_and_only_then() -> None:
    model = LatentModel(WorldModelConfig(embed_dim=8, sa_dim=8, hidden=(16,), target_every=3), (2,), 2)
    states = torch.randn(5, 2)

    def same() -> bool:
        return torch.allclose(model.target_z_s(states), model.z_s(states))

    assert model.update_target() and same()                    # update 0: copied
    for update in (1, 2):
        with torch.no_grad():
            model.state_head[0].weight.add_(0.5)
        assert not model.update_target() and not same(), update
    assert model.update_target() and same()                    # update 3: copied again


@pytest.mark.parametrize("integration, goals_are_states, fed", [
    ("none", True, set()), ("critic", True, {"critic"}), ("actor", True, {"actor"}), ("goal", True, {"goal"}),
    ("all", True, {"critic", "actor", "goal"}), ("all", False, {"critic", "actor"})])
def test_integration_switches_change_what_the_networks_see(integration, goals_are_states, fed) -> None:
    torch.manual_seed(0)
    crl = CRLConfig(hidden=(16,), latent_dim=8)
    wm = WorldModelConfig(integration=integration, embed_dim=6, sa_dim=5, hidden=(16,))
    goal_dim = 2 if goals_are_states else 3
    agent = WMCRLAgent(crl, wm, (2,), goal_dim, 2, goals_are_states)
    phi_in = agent.crl.critic.phi[0][0].in_features
    psi_in = agent.crl.critic.psi[0][0].in_features
    actor_in = agent.crl.actor[0].in_features
    assert phi_in == 2 + 2 + (5 if "critic" in fed else 0)
    assert psi_in == goal_dim + (6 if "goal" in fed else 0)
    assert actor_in == 2 + goal_dim + (6 if "actor" in fed else 0) + (6 if "goal" in fed else 0)
    inputs = agent.crl_inputs(torch.randn(4, 2), torch.rand(4, 2), torch.randn(4, goal_dim), torch.randn(4, goal_dim))
    assert (inputs.critic_embed is not None) == ("critic" in fed)
    assert (inputs.actor_embed is not None) == ("actor" in fed)
    assert (inputs.value_goal_embed is not None) == ("goal" in fed)
    if fed & {"actor", "goal"}:        # the world model's weights reach the actor's output, and only then
        states, goals = torch.randn(4, 2), torch.randn(4, goal_dim)
        before = agent.act(states, goals)
        with torch.no_grad():
            agent.world_model.state_head[0].weight.mul_(3.0)
        assert not torch.allclose(before, agent.act(states, goals))


def test_goal_integration_needs_goals_that_are_states() -> None:
    with pytest.raises(ValueError, match="goals that are states"):
        WMCRLAgent(CRLConfig(hidden=(8,), latent_dim=4), WorldModelConfig(integration="goal"), (2,), 3, 2, False)


def test_goal_distance_cap_shows_far_goals_at_the_cap_in_their_direction() -> None:
    torch.manual_seed(0)
    agent = WMCRLAgent(CRLConfig(hidden=(16,), latent_dim=8, goal_distance_cap=2.0),
                       WorldModelConfig(integration="none"), (2,), 3, 2, goals_are_states=False)
    states = torch.randn(2, 2)
    far, at_cap, near = (torch.tensor([[d, 0.6, 0.8], [d, -1.0, 0.0]]) for d in (8.0, 2.0, 1.0))
    torch.testing.assert_close(agent.act(states, far), agent.act(states, at_cap))
    assert not torch.allclose(agent.act(states, near), agent.act(states, at_cap))   # nearer goals as they are
    inputs = agent.crl_inputs(states, torch.rand(2, 2), far, far)
    torch.testing.assert_close(agent.crl.q_values(inputs, inputs.actions, far, None),
                               agent.crl.q_values(inputs, inputs.actions, at_cap, None))
    # Goals that are states have no distance to cap.
    from training.config import ConfigError
    from training.offline import OfflineConfig, validate_offline
    cfg = OfflineConfig()
    cfg.agent.goal_distance_cap = 2.0
    with pytest.raises(ConfigError, match="goal_distance_cap needs data.goal=relative_position"):
        validate_offline(cfg)


def test_relative_goals_are_in_the_current_robot_frame() -> None:
    poses = np.array([[0.0, 0.0, np.pi / 2], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    goal = relative_goals(poses, np.array([0, 0]), np.array([1, 2]))
    np.testing.assert_allclose(goal[0], [2.0, 1.0, 0.0], atol=1e-6)      # straight ahead
    np.testing.assert_allclose(goal[1], [1.0, 0.0, -1.0], atol=1e-6)     # to the right


def _train(tmp_path: Path, recipe: str, dataset: Path, run: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "training/train_offline.py", "--config", f"config/train/{recipe}.yaml",
                           "--dataset", str(dataset), "--run-dir", str(tmp_path / run), "--threads", "1",
                           *[a for item in TINY + list(extra) for a in ("--set", item)]],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _records(run_dir: Path, kind: str = "train") -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_short_state_runs_learn_and_resume(tmp_path: Path) -> None:
    dataset = tmp_path / "walk.npz"
    save_dataset(dataset, {k: v for k, v in trajectories([300] * 8, np.random.default_rng(0)).items() if k != "robot_pose"})
    result = _train(tmp_path, "wm_crl_pointmaze", dataset, "wm", "run.steps=240", "run.log_every=40",
                    "run.eval_env=none", "run.checkpoint_every=120", "world_model.warmup=40")
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(tmp_path / "wm")
    wm_losses = [r["world_model/loss"] for r in records]
    critic = [r["critic/contrastive_loss"] for r in records if "critic/contrastive_loss" in r]
    assert wm_losses[-1] < 0.7 * wm_losses[0], wm_losses
    assert "critic/contrastive_loss" not in records[0]          # the actor-critic waits for the warm-up
    assert critic[-1] < critic[0], critic
    resumed = _train(tmp_path, "wm_crl_pointmaze", dataset, "wm", "run.steps=280")   # --config is refused on a run
    assert resumed.returncode == 2 and "already holds a run" in resumed.stderr
    result = subprocess.run([sys.executable, "training/train_offline.py", "--dataset", str(dataset), "--run-dir",
                             str(tmp_path / "wm"), "--resume", "--set", "run.steps=280", "--threads", "1"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [r["step"] for r in _records(tmp_path / "wm")]
    assert steps == sorted(steps) and steps[-1] == 280 and steps.count(240) == 1


def test_malformed_dataset_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, observations=np.zeros((5, 2), np.float32), actions=np.zeros((4, 2), np.float32),
             terminals=np.zeros(5, np.float32))
    result = _train(tmp_path, "crl_pointmaze", bad, "bad")
    assert result.returncode == 2 and result.stderr.startswith("error:") and result.stderr.count("\n") == 1


def test_image_run_exports_a_bundle_the_runtime_runs(tmp_path: Path) -> None:
    dataset = tmp_path / "images.npz"
    save_dataset(dataset, trajectories([40] * 4, np.random.default_rng(2), image_size=64))
    result = _train(tmp_path, "wm_crl_embedded", dataset, "emb", "run.steps=20", "run.log_every=10",
                    "run.eval_env=none", "world_model.warmup=5", "agent.batch_size=16")
    assert result.returncode == 0, result.stderr[-3000:]
    spec = export_bundle(tmp_path / "emb", tmp_path / "bundle")
    assert spec.state_size == 1 and spec.training["method"] == "wm_crl"
    runtime = PolicyRuntime(tmp_path / "bundle", providers="cpu")
    rng = np.random.default_rng(0)
    actions = [runtime.step(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), np.array([2.0, 0.6, 0.8], np.float32))
               for _ in range(3)]
    assert all(a.shape == (2,) and np.all(np.abs(a) <= 1) for a in actions)
    # A state-based run is no bundle: refused with its reason.
    state_data = tmp_path / "walk.npz"
    save_dataset(state_data, trajectories([50] * 3, np.random.default_rng(3)))
    assert _train(tmp_path, "crl_pointmaze", state_data, "state", "run.steps=2", "run.eval_env=none").returncode == 0
    with pytest.raises(RuntimeError, match="a policy bundle takes square rgb images"):
        export_bundle(tmp_path / "state", tmp_path / "no_bundle")


def test_stacked_frames_train_export_and_run_as_the_trainer_saw_them(tmp_path: Path) -> None:
    from training.evaluation.offline import GoalReachingPolicy
    from training.export_onnx import exportable_policy
    from training.offline import OfflineBatches, OfflineConfig

    arrays = trajectories([30] * 4, np.random.default_rng(4), image_size=64)
    # The stacked state of step t: images t-2, t-1, t of its own trajectory, the first repeated at its start.
    cfg = OfflineConfig()
    cfg.data.state, cfg.data.goal, cfg.data.frames = "rgb", "relative_position", 3
    batches = OfflineBatches(OfflineDataset.from_arrays(arrays), cfg, torch.device("cpu"))
    assert batches.state_shape == (64, 64, 9)
    rgb = arrays["rgb"]
    for step, frames in {30: (30, 30, 30), 31: (30, 30, 31), 35: (33, 34, 35), 29: (27, 28, 29)}.items():
        np.testing.assert_array_equal(batches.state_at(np.array([step]))[0], np.concatenate(rgb[list(frames)], -1))

    dataset = tmp_path / "images.npz"
    save_dataset(dataset, arrays)
    result = _train(tmp_path, "crl_embedded", dataset, "stack", "run.steps=10", "run.log_every=5",
                    "run.eval_env=none", "agent.batch_size=16", "data.frames=2", "agent.goal_distance_cap=2.0")
    assert result.returncode == 0, result.stderr[-3000:]
    spec = export_bundle(tmp_path / "stack", tmp_path / "bundle")
    assert spec.state_size == 64 * 64 * 3
    runtime = PolicyRuntime(tmp_path / "bundle", providers="cpu")
    agent = exportable_policy(tmp_path / "stack").step.agent
    policy = GoalReachingPolicy(agent, frames=2)
    rng = np.random.default_rng(0)
    goal = np.array([6.0, 0.6, 0.8], np.float32)    # beyond the cap: the bundle caps it as training did
    for episode in range(2):             # the runtime's reset and the policy's give the same start
        runtime.reset()
        policy.reset(0)
        for _ in range(3):
            image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            expected = policy.act({"rgb": image[None], "goal": goal[None]}, [{}])[0]
            np.testing.assert_allclose(runtime.step(image, goal), expected, atol=1e-4)
    np.testing.assert_array_equal(runtime.state, image.reshape(-1).astype(np.float32))
    # The run's networks see two frames: a resume asking for one is refused in one line.
    refused = subprocess.run([sys.executable, "training/train_offline.py", "--dataset", str(dataset), "--run-dir",
                              str(tmp_path / "stack"), "--resume", "--set", "data.frames=1", "--threads", "1"],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "does not fit these networks" in refused.stderr, refused.stderr[-2000:]
    assert refused.stderr.strip().count("\n") == 0


def test_actor_loss_looks_at_the_actors_action_not_the_datasets() -> None:
    """With the world model in the critic, Q(s, pi(s), g) embeds pi(s): the dataset's actions reach
    the actor's loss only through its BC term."""
    torch.manual_seed(0)
    agent = WMCRLAgent(CRLConfig(hidden=(16,), latent_dim=8), WorldModelConfig(integration="critic", embed_dim=6,
                       sa_dim=5, hidden=(16,)), (2,), 2, 2, True)
    states, goals = torch.randn(8, 2), torch.randn(8, 2)
    infos = [agent.crl.actor_loss(agent.crl_inputs(states, actions, goals, goals))[1]
             for actions in (torch.rand(8, 2), -torch.rand(8, 2))]
    assert torch.allclose(infos[0]["q_loss"], infos[1]["q_loss"]) and torch.allclose(infos[0]["q_mean"], infos[1]["q_mean"])
    assert not torch.allclose(infos[0]["bc_loss"], infos[1]["bc_loss"])


@pytest.mark.parametrize("integration", ["none", "actor", "all"])
def test_awr_trains_with_every_integration(integration: str) -> None:
    torch.manual_seed(0)
    agent = WMCRLAgent(CRLConfig(hidden=(16,), latent_dim=8, actor_loss="awr"),
                       WorldModelConfig(integration=integration, embed_dim=6, sa_dim=5, hidden=(16,), warmup=0),
                       (2,), 2, 2, True)
    states, actions, goals = torch.randn(8, 2), torch.rand(8, 2) * 2 - 1, torch.randn(8, 2)
    info = agent.update((torch.randn(8, 3, 2), torch.rand(8, 2, 2), torch.ones(8, 2, dtype=torch.bool))
                        if agent.world_model is not None else None,
                        lambda: agent.crl_inputs(states, actions, goals, goals))
    assert "value/contrastive_loss" in info and all(torch.isfinite(torch.as_tensor(v)) for v in info.values())


def test_a_resumed_run_continues_as_if_never_stopped(tmp_path: Path) -> None:
    from training.config import build_config, load_tree
    from training.offline import OfflineConfig, OfflineTrainer

    dataset = OfflineDataset.from_arrays(trajectories([200] * 4, np.random.default_rng(4)))
    cfg = build_config(OfflineConfig, load_tree(REPO_ROOT / "config/train/wm_crl_pointmaze.yaml",
                                                TINY + ["run.eval_env=none", "run.log_every=5", "world_model.warmup=4"]))

    def train(run_dir: Path, steps: int, resume: bool) -> OfflineTrainer:
        cfg.run.steps = steps
        trainer = OfflineTrainer(cfg, dataset, run_dir, resume=resume)
        trainer.run()
        return trainer

    straight = train(tmp_path / "straight", 12, False)
    train(tmp_path / "split", 6, False)
    resumed = train(tmp_path / "split", 12, True)
    for (name, a), b in zip(straight.agent.state_dict().items(), resumed.agent.state_dict().values()):
        assert torch.equal(a, b), name


def test_keep_best_chooses_on_validation_episodes_through_the_navigation_node(tmp_path: Path) -> None:
    from training.evaluation.episodes import VALIDATION_SEED_BASE

    dataset = tmp_path / "images.npz"
    save_dataset(dataset, trajectories([40] * 4, np.random.default_rng(5), image_size=64))
    node_run = ["run.eval_env=embedded", "run.eval_splits=[train]", "run.eval_episodes=2", "run.keep_best=true",
                "run.eval_node_params=config/sim.yaml", "world_model.warmup=5", "agent.batch_size=16"]
    # Choosing a checkpoint on evaluate.py's test episodes is refused before anything trains.
    refused = _train(tmp_path, "wm_crl_embedded", dataset, "refused", *node_run)
    assert refused.returncode == 2 and "run.eval_seed_base=2000000" in refused.stderr, refused.stderr[-2000:]
    assert refused.stderr.strip().count("\n") == 0

    result = _train(tmp_path, "wm_crl_embedded", dataset, "best", *node_run, "run.steps=20", "run.eval_every=10",
                    "run.log_every=10", f"run.eval_seed_base={VALIDATION_SEED_BASE}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "best"
    evals = [r for r in _records(run_dir, "eval") if r["task"] == "all"]
    assert [r["step"] for r in evals] == [10, 20]
    best = json.loads((run_dir / "best" / "best.json").read_text())
    scores = [r["success_rate"] for r in evals]
    assert best["step"] == evals[scores.index(max(scores))]["step"] and best["seed_base"] == VALIDATION_SEED_BASE
    # The episodes were the validation ones, driven by the bundle exported at the last evaluation.
    episodes = json.loads((run_dir / "eval_episodes.json").read_text())["episodes"]["train"]
    assert sorted(e["seed"] for e in episodes) == [VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 1]
    status = json.loads((run_dir / "eval_episodes.json").read_text())["navigation_node_status_steps"]
    assert sum(status.values()) == sum(e["length"] for e in episodes), status   # every step went through the node
    assert json.loads((run_dir / "eval_bundle" / "policy.json").read_text())["training"]["steps"] == 20
    # best/ is a run directory export_onnx takes: its bundle is the chosen update's policy.
    spec = export_bundle(run_dir / "best", tmp_path / "best_bundle")
    assert spec.training["steps"] == best["step"]


def test_keep_best_keeps_the_strictly_best_evaluation_across_a_resume(tmp_path: Path, monkeypatch) -> None:
    import training.evaluation.offline as offline_evaluation
    from recore_nav.episodes import EpisodeRecord
    from training.config import build_config, load_tree
    from training.evaluation.episodes import VALIDATION_SEED_BASE
    from training.offline import OfflineConfig, OfflineTrainer

    scripted = iter([0.25, 0.75, 0.5, 0.75, 1.0])   # success of the evaluations at updates 2, 4, 6, 8, 10

    def evaluate_offline_policy(agent, cfg, episodes, image_size=64, make_policy=None):
        successes = round(next(scripted) * 4)
        return {"train": [EpisodeRecord(success=i < successes, spl=0.0, collisions=0, length=1, episode_return=0.0,
                                        seed=VALIDATION_SEED_BASE + i) for i in range(4)]}

    monkeypatch.setattr(offline_evaluation, "evaluate_offline_policy", evaluate_offline_policy)
    arrays = trajectories([40] * 4, np.random.default_rng(6), image_size=64)
    dataset = OfflineDataset.from_arrays(arrays)
    cfg = build_config(OfflineConfig, load_tree(REPO_ROOT / "config/train/wm_crl_embedded.yaml", TINY + [
        "run.eval_every=2", "run.checkpoint_every=2", "run.keep_best=true",
        f"run.eval_seed_base={VALIDATION_SEED_BASE}", "world_model.warmup=1", "agent.batch_size=16"]))

    def best_step() -> int:
        return json.loads((tmp_path / "run" / "best" / "best.json").read_text())["step"]

    cfg.run.steps = 6
    OfflineTrainer(cfg, dataset, tmp_path / "run").run()
    assert best_step() == 4                      # 0.25, then 0.75; 0.5 is worse
    cfg.run.steps = 8
    resumed = OfflineTrainer(cfg, dataset, tmp_path / "run", resume=True)
    assert resumed.best_success == 0.75          # the choice survives the stop
    resumed.run()
    assert best_step() == 4                      # 0.75 again: the earlier of equals stays
    cfg.run.steps = 10
    OfflineTrainer(cfg, dataset, tmp_path / "run", resume=True).run()
    assert best_step() == 10
    assert export_bundle(tmp_path / "run" / "best", tmp_path / "best_bundle").training["steps"] == 10
    # The run's own evaluations were on validation episodes: its bundle does not carry them as results.
    assert export_bundle(tmp_path / "run", tmp_path / "bundle").evaluation == {}
