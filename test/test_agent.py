"""The agent's public surface: configuration loading, the recurrent policy step (shapes,
determinism, export through ONNX), optimiser state, and the imagination maths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import yaml

from recore_nav.bundle import INPUT_NAMES, OUTPUT_NAMES
from toy_sequences import toy_batch
from training.config import ConfigError, build_config, config_from_dict, config_to_dict, load_config
from training.export_onnx import export_policy
from training.methods.behavior import ActorCritic, BehaviorConfig, lambda_return
from training.methods.recore import Agent

RECIPES = sorted(Path("config/train").glob("*.yaml"))

# Tiny models: one thread is faster, and immune to OpenMP stalls when other processes share the cores.
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def agent() -> Agent:
    torch.manual_seed(0)
    cfg = load_config("config/train/smoke.yaml")
    return Agent(cfg.agent, cfg.env.image_size)


def step_inputs(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, generator=g)
    return rgb, torch.randn(batch, 3, generator=g), torch.rand(batch, 2, generator=g) * 2 - 1


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_loads_and_round_trips(recipe: Path) -> None:
    """Online recipes load as the trainer's config, offline ones (a `data` section) as the offline
    program's; either way the tree survives a trip through a checkpoint's plain dict."""
    if "data" in (yaml.safe_load(recipe.read_text()) or {}):
        from training.train_offline import load_offline_config
        from training.offline import OfflineConfig
        cfg = load_offline_config(recipe, [])
        assert build_config(OfflineConfig, config_to_dict(cfg)) == cfg
    else:
        cfg = load_config(recipe)
        assert config_from_dict(config_to_dict(cfg)) == cfg


def test_table_rows_have_recipes() -> None:
    names = {p.stem for p in RECIPES}
    assert {"dreamer", "recore_depth", "recore_seg", "recore_denoise", "recore_no_cl", "recore_no_cl_da",
            "recore_no_aux", "recore_no_aux_rgb"} <= names


def test_defaults_are_dreamerv2_sizes() -> None:
    cfg = load_config(None)
    wm, beh = cfg.agent.world_model, cfg.agent.behavior
    assert (wm.deter, wm.stoch, wm.classes, wm.cnn_depth, wm.mlp_units) == (200, 32, 32, 32, 400)
    assert (cfg.agent.batch_size, cfg.agent.seq_len, cfg.env.image_size, beh.horizon) == (16, 50, 64, 15)
    assert (beh.gamma, beh.lam, wm.kl_balance) == (0.99, 0.95, 0.8)


def test_overrides_apply_and_bad_ones_are_refused() -> None:
    cfg = load_config("config/train/recore_seg.yaml", ["agent.batch_size=8", "run.total_steps=1e5",
                                                       "agent.representation.seg_classes=6"])
    assert cfg.agent.batch_size == 8 and cfg.run.total_steps == 100_000
    assert cfg.agent.representation.seg_classes == 6 and cfg.agent.representation.aux_target == "seg"
    with pytest.raises(ConfigError, match="unknown config key 'agent.batchsize'"):
        load_config(None, ["agent.batchsize=8"])
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(None, ["agent.batch_size=many"])
    with pytest.raises(ConfigError, match="aux_target"):
        load_config(None, ["agent.representation.aux_target=normals"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("config/train/no_such_row.yaml")


def test_policy_step_shapes_and_determinism(agent: Agent) -> None:
    rgb, goal, prev = step_inputs()
    state = agent.initial_state(3)
    assert state.shape == (3, agent.state_size) and agent.state_size == 32 + 4 * 4
    action, next_state = agent.policy_step(rgb, goal, prev, state, explore=False)
    again, again_state = agent.policy_step(rgb, goal, prev, state, explore=False)
    assert action.shape == (3, 2) and next_state.shape == (3, agent.state_size)
    assert torch.equal(action, again) and torch.equal(next_state, again_state)
    assert action.abs().max() <= 1.0
    explored = [agent.policy_step(rgb, goal, prev, state, explore=True)[0] for _ in range(2)]
    assert not torch.equal(explored[0], explored[1])
    module_action, module_state = agent.policy_step_module()(rgb, goal, prev, state)
    assert torch.equal(module_action, action) and torch.equal(module_state, next_state)


def test_policy_step_refuses_float_images(agent: Agent) -> None:
    rgb, goal, prev = step_inputs()
    with pytest.raises(ValueError, match="uint8"):
        agent.policy_step(rgb.float(), goal, prev, agent.initial_state(3))


def test_policy_step_module_exports_to_onnx_with_parity(agent: Agent, tmp_path: Path) -> None:
    """The export program's own `export_policy`, run by onnxruntime under the bundle's names."""
    path = tmp_path / "policy.onnx"
    export_policy(agent.policy_step_module(), agent.image_size, agent.state_size, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert tuple(i.name for i in session.get_inputs()) == INPUT_NAMES
    module = agent.policy_step_module().eval()
    state = agent.initial_state(1)
    onnx_state = state.numpy()
    for t in range(10):
        rgb, goal, prev = step_inputs(1, seed=t)
        with torch.no_grad():
            action, state = module(rgb, goal, prev, state)
        onnx_action, onnx_state = session.run(list(OUTPUT_NAMES), dict(zip(
            INPUT_NAMES, (rgb.numpy(), goal.numpy(), prev.numpy(), onnx_state))))
        np.testing.assert_allclose(onnx_action, action.numpy(), atol=1e-4)
        # Keep feeding torch's state so an argmax tie cannot make the two diverge for good.
        onnx_state = state.numpy()


def test_update_changes_weights_and_optimizer_state_round_trips(agent: Agent) -> None:
    batch = toy_batch(4, 8)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    info = agent.update(batch)
    assert all(isinstance(v, float) and math.isfinite(v) for v in info.values())
    after = agent.state_dict()
    for prefix in ("world_model.encoder", "world_model.rssm", "behavior.actor", "behavior.critic"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)), prefix
    assert int(after["behavior.updates"]) == int(before["behavior.updates"]) + 1

    cfg = load_config("config/train/smoke.yaml")
    clone = Agent(cfg.agent, 64)
    clone.load_state_dict(agent.state_dict())
    clone.load_optimizer_state_dict(agent.optimizer_state_dict())
    assert clone.optimizers["model"].state_dict()["state"].keys() == agent.optimizers["model"].state_dict()["state"].keys()
    rgb, goal, prev = step_inputs()
    state = agent.initial_state(3)
    assert torch.equal(clone.policy_step(rgb, goal, prev, state)[0], agent.policy_step(rgb, goal, prev, state)[0])


def test_update_rejects_incomplete_batches(agent: Agent) -> None:
    batch = toy_batch(2, 4)
    del batch["depth"]
    with pytest.raises(KeyError, match="depth"):
        agent.update(batch)
    batch = toy_batch(2, 4, size=32)
    with pytest.raises(ValueError, match="rgb"):
        agent.update(batch)


def test_lambda_return_matches_its_definition() -> None:
    reward = torch.tensor([[1.0], [2.0], [3.0]])
    value = torch.tensor([[0.5], [1.5], [2.5], [4.0]])
    discount = torch.full((3, 1), 0.9)
    lam = 0.5
    expected = [0.0] * 3
    last = 4.0
    for t in (2, 1, 0):
        last = reward[t, 0] + 0.9 * ((1 - lam) * value[t + 1, 0] + lam * last)
        expected[t] = float(last)
    assert torch.allclose(lambda_return(reward, value, discount, lam)[:, 0], torch.tensor(expected))
    # lam = 1: discounted Monte-Carlo return bootstrapped by the last value.
    mc = lambda_return(reward, value, discount, 1.0)[0, 0]
    assert math.isclose(float(mc), 1 + 0.9 * 2 + 0.81 * 3 + 0.729 * 4.0, rel_tol=1e-6)


def test_actor_learns_to_prefer_rewarded_actions_in_imagination() -> None:
    """With reward = first action component in the imagined future, the actor's mean action rises."""
    torch.manual_seed(0)
    cfg = load_config("config/train/smoke.yaml", ["agent.behavior.actor_lr=3e-3", "agent.behavior.entropy_scale=0"])
    agent = Agent(cfg.agent, 64)
    # A world model whose reward is read off the action: the deter state after one step depends on
    # the action through the GRU; train the reward head to report the action taken.
    batch = toy_batch(4, 8)
    batch["reward"] = batch["action"][..., 0].clone()
    for _ in range(40):
        agent.update_world_model(batch)
    posterior = agent.update_world_model(batch)[1]
    rgb, goal, prev = step_inputs(16)
    start = agent.policy_step(rgb, goal, prev, agent.initial_state(16))[0][:, 0].mean()
    for _ in range(25):
        agent.update_behavior(posterior)
    end = agent.policy_step(rgb, goal, prev, agent.initial_state(16))[0][:, 0].mean()
    assert end > start + 0.2, (float(start), float(end))


def test_recipes_merge_left_to_right() -> None:
    """A table row over the shipped recipe: the row's representation, the base's sizes and budget."""
    base = load_config("config/train/recore_pointnav.yaml")
    cfg = load_config(["config/train/recore_pointnav.yaml", "config/train/dreamer.yaml"], ["run.total_steps=123"])
    assert cfg.agent.method == "dreamer" and cfg.agent.representation.reconstruct_rgb
    assert not cfg.agent.representation.contrastive and cfg.agent.representation.aux_target == "none"
    assert cfg.agent.representation.projection_dim == base.agent.representation.projection_dim   # kept from the base
    assert cfg.agent.world_model == base.agent.world_model and cfg.agent.behavior == base.agent.behavior
    assert cfg.run.total_steps == 123 and cfg.run.prefill_policy == base.run.prefill_policy == "expert"
    with pytest.raises(ConfigError, match="prefill_policy"):
        load_config(None, ["run.prefill_policy=teleport"])


def test_actor_imitates_labelled_states_and_ignores_unlabelled_ones() -> None:
    """bc_scale > 0: the deterministic action moves to the expert's command on real states;
    a batch without labels (NaN) leaves the imitation term out instead of poisoning the loss."""
    torch.manual_seed(0)
    cfg = load_config("config/train/smoke.yaml", ["agent.behavior.bc_scale=1.0", "agent.behavior.actor_lr=3e-3"])
    agent = Agent(cfg.agent, 64)
    batch = toy_batch(4, 8)
    target = torch.tensor([0.8, -0.5])
    batch["expert_action"] = target.expand(4, 8, 2).clone()
    losses = [agent.update(batch)["actor/imitation_loss"] for _ in range(30)]
    assert losses[-1] < 0.25 * losses[0], losses
    rgb, goal, prev = step_inputs(8)
    action = agent.policy_step(rgb, goal, prev, agent.initial_state(8))[0]
    assert torch.allclose(action.mean(0), target, atol=0.25), action.mean(0)

    batch["expert_action"] = torch.full((4, 8, 2), float("nan"))
    info = agent.update(batch)
    assert info["actor/imitation_labelled"] == 0.0 and info["actor/imitation_loss"] == 0.0
    assert all(math.isfinite(v) for v in info.values())


def test_mixture_actor_commits_to_one_side_where_demonstrations_split() -> None:
    """The shipped model's failure: in front of an obstacle the expert turns left in some
    episodes and right in others, and a one-mode actor learns their average, no turn at all.
    A two-mode actor (multiple-choice imitation) keeps both turns and its deterministic action
    picks one, full left or full right."""
    feat = torch.randn(1, 16).expand(256, 16)               # one state, seen many times
    goal = torch.zeros(256, 3)
    expert = torch.zeros(256, 2)
    expert[:, 1] = torch.where(torch.arange(256) % 2 == 0, 1.0, -1.0)   # turn in place, either way
    turns = {}
    for modes in (1, 2):
        torch.manual_seed(0)
        behavior = ActorCritic(BehaviorConfig(units=32, layers=2, actor_modes=modes), feat_size=16)
        optimizer = torch.optim.Adam(behavior.actor.parameters(), lr=3e-3)
        for _ in range(300):
            loss, _ = behavior.imitation_loss(feat, goal, expert)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        turns[modes] = behavior.actor(torch.cat([feat[:1], goal[:1]], -1)).mode()[0, 1].item()
    assert abs(turns[1]) < 0.2, turns                        # the average: drives into the obstacle
    assert abs(turns[2]) > 0.9, turns                        # one of the two turns


def test_mixture_actor_policy_step_exports_to_onnx_with_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = load_config("config/train/smoke.yaml", ["agent.behavior.actor_modes=3"])
    agent = Agent(cfg.agent, 64)
    test_policy_step_module_exports_to_onnx_with_parity(agent, tmp_path)
    rgb, goal, prev = step_inputs(4)
    explored = agent.policy_step(rgb, goal, prev, agent.initial_state(4), explore=True)[0]
    assert explored.shape == (4, 2) and bool((explored.abs() <= 1).all())
