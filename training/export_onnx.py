"""Export a training run's policy as the bundle the robot runs (docs/architecture.md).

    python training/export_onnx.py runs/recore_depth --out models/recore_pointnav [--name NAME]

One graph, one policy step, opset 17, batch 1, inputs rgb/goal/prev_action/state and outputs
action/next_state (`recore_nav.bundle`). An online ReCoRe run exports the encoder, one RSSM
filtering step and the actor's deterministic action (`Agent.policy_step_module()`); an offline
CRL / WM-CRL run from images exports its memoryless actor (state size 1). `policy.json` records
the image and state sizes, the speed limits the policy's actions are scaled by, the training
method, config and step count, and the run's latest evaluation per split from `metrics.jsonl`.
The export is checked before it is kept: the graph must give the torch step's action on random
inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):   # run as `python training/export_onnx.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch import nn

from recore_nav.bundle import INPUT_NAMES, ONNX_FILE, OUTPUT_NAMES, BundleSpec, write_bundle_json
from recore_nav.task import ACTION_DIM, MAX_ANGULAR_SPEED, MAX_LINEAR_SPEED
from training.methods.recore import Agent
from training.methods.wm_crl import WMCRLAgent
from training.checkpoint import load_checkpoint
from training.config import config_from_dict
from training.evaluation.episodes import EVAL_SEED_BASE
from training.evaluation.report import environment_label, evaluation_key
from training.run_log import METRICS_FILE

OPSET = 17
OFFLINE_METHODS = ("crl", "wm_crl")


@dataclass
class ExportablePolicy:
    """What a run's checkpoint exports: the one-step policy module and what policy.json says of it."""

    step: nn.Module                   # forward(rgb, goal, prev_action, state) -> (action, next_state)
    image_size: int
    state_size: int
    action_scale: dict[str, float]    # max_linear_speed, max_angular_speed
    training: dict[str, Any]


class GoalReachingStep(nn.Module):
    """An offline (CRL / WM-CRL) policy as the bundle's recurrent step. A one-image policy is
    memoryless: its state (size 1) passes through. A policy of `frames` stacked images keeps the
    last `frames - 1` images in its state (uint8 values as floats, oldest first); the zero state
    of a reset stands for the current image repeated, as training stacked a trajectory's start.
    `prev_action` is taken and unused, as the bundle contract has it."""

    def __init__(self, agent: WMCRLAgent, frames: int = 1):
        super().__init__()
        self.agent, self.frames = agent, frames

    def state_size(self, image_size: int) -> int:
        return 1 if self.frames == 1 else (self.frames - 1) * image_size * image_size * 3

    def forward(self, rgb: torch.Tensor, goal: torch.Tensor, prev_action: torch.Tensor, state: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frames == 1:
            action = self.agent.act(rgb, goal)
            # Keep prev_action an input of the graph (an unused input is dropped by the exporter).
            return action, state + 0.0 * prev_action[:, :1]
        n, h, w, c = rgb.shape
        current = rgb.float()
        history = state.view(n, h, w, c * (self.frames - 1))
        fresh = (state.abs().amax(dim=1) == 0).view(n, 1, 1, 1)
        history = torch.where(fresh, current.repeat(1, 1, 1, self.frames - 1), history)
        stacked = torch.cat([history, current], dim=-1)
        action = self.agent.act(stacked.to(torch.uint8), goal) + 0.0 * prev_action
        return action, stacked[..., c:].reshape(n, -1)


def load_agent(run_dir: Path) -> tuple[Agent, dict[str, Any]]:
    """The trained ReCoRe agent of an online run (CPU, eval mode) and its checkpoint state."""
    state = load_checkpoint(run_dir)
    cfg = config_from_dict(state["config"])
    agent = Agent(cfg.agent, image_size=cfg.env.image_size, device="cpu")
    agent.load_state_dict(state["agent"])
    agent.eval()
    return agent, state


def exportable_policy(run_dir: Path) -> ExportablePolicy:
    """The policy of an online (ReCoRe) or offline (CRL, WM-CRL) run's checkpoint."""
    state = load_checkpoint(run_dir)
    if state.get("method") in OFFLINE_METHODS:
        return _offline_policy(run_dir, state)
    agent, state = load_agent(run_dir)
    scale = state.get("action_scale")
    if not scale:
        raise RuntimeError(f"{run_dir}'s checkpoint does not say the speed limits its environment used "
                           "(action_scale): resume it for a step to record them")
    config = state["config"]
    return ExportablePolicy(
        step=agent.policy_step_module().eval(), image_size=agent.image_size, state_size=agent.state_size,
        action_scale=scale, training={"method": config["agent"]["method"], "env": state["env"],
                                      "steps": int(state["step"]), "updates": int(state["updates"]), "config": config})


def _offline_policy(run_dir: Path, state: dict[str, Any]) -> ExportablePolicy:
    from training.offline import OfflineConfig
    from training.config import build_config

    cfg = build_config(OfflineConfig, state["config"])
    shape = tuple(state["state_shape"])
    if cfg.data.state != "rgb" or cfg.data.goal != "relative_position" or len(shape) != 3 or shape[0] != shape[1]:
        raise RuntimeError(f"{run_dir} learned from {cfg.data.state} states and {cfg.data.goal} goals; a policy "
                           "bundle takes square rgb images and robot-frame goals (data.state=rgb, "
                           "data.goal=relative_position)")
    agent = WMCRLAgent(cfg.agent, cfg.world_model, shape, int(state["goal_dim"]), ACTION_DIM, goals_are_states=False)
    agent.load_state_dict(state["agent"])
    agent.eval()
    step = GoalReachingStep(agent, cfg.data.frames).eval()
    # Datasets store actions normalised by the task's speed limits (the generators and the
    # rosbag importer both use recore_nav.task's), so those are the bundle's scale.
    return ExportablePolicy(
        step=step, image_size=shape[0], state_size=step.state_size(shape[0]),
        action_scale={"max_linear_speed": MAX_LINEAR_SPEED, "max_angular_speed": MAX_ANGULAR_SPEED},
        training={"method": state["method"], "env": "offline", "dataset": state.get("dataset"),
                  "steps": int(state["step"]), "updates": int(state["step"]), "config": state["config"]})


def training_env_label(training: dict[str, Any]) -> str:
    """What the environment a run evaluated in is called in a bundle's evaluation keys (an offline
    run's evaluations are the embedded simulator's)."""
    if training["env"] == "offline":
        return "embedded"
    env_config = (training.get("config") or {}).get("env", {})
    return environment_label(training["env"], env_config.get("igibson_scenes") or ())


def latest_evaluation(run_dir: Path, env: str) -> dict[str, dict[str, Any]]:
    """The last evaluation of each split in the run's metrics.jsonl, keyed `<env>/<split>` as
    `training/evaluate.py --record` keys its own (which replaces it)."""
    latest: dict[str, dict[str, Any]] = {}
    path = Path(run_dir) / METRICS_FILE
    if path.is_file():
        for line in path.read_text().splitlines():
            record = json.loads(line) if line.strip() else {}
            split = record.get("split", record.get("task"))
            if (record.get("kind") == "eval" and split not in (None, "all")   # "all": a table's pool, no split
                    and record.get("seed_base", EVAL_SEED_BASE) == EVAL_SEED_BASE):   # not validation episodes
                values = {k: v for k, v in record.items() if k not in ("kind", "split", "task", "time")}
                latest[evaluation_key(env, split)] = {"source": "training", **values}
    return latest


def example_inputs(image_size: int, state_size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (1, image_size, image_size, 3), dtype=torch.uint8, generator=generator),
            torch.tensor([[2.0, 0.6, 0.8]]),
            torch.rand(1, ACTION_DIM, generator=generator) * 2 - 1,
            torch.zeros(1, state_size))


def export_policy(step: nn.Module, image_size: int, state_size: int, onnx_path: Path) -> None:
    """Trace a policy step module into `onnx_path` (TorchScript exporter, opset 17).

    Not the torch.export-based exporter: at opset 17 (torch 2.13) it emits Split with the
    opset-18 `num_outputs` attribute, a graph onnxruntime refuses."""
    inputs = example_inputs(image_size, state_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # the legacy exporter, deliberately
        torch.onnx.export(step.eval(), inputs, str(onnx_path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)


def check_export(step: nn.Module, image_size: int, state_size: int, onnx_path: Path, atol: float = 1e-4) -> float:
    """Largest |action or next-state difference| between torch and onnxruntime over a few random
    episodes of three steps, each step taking the last one's state (a reset's zero state first)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if tuple(names) != INPUT_NAMES:
        raise RuntimeError(f"exported graph has inputs {names}, the bundle contract says {list(INPUT_NAMES)}")
    worst = 0.0
    for seed in range(3):
        state = None
        for t in range(3):
            *inputs, zero_state = example_inputs(image_size, state_size, seed * 3 + t)
            inputs.append(zero_state if state is None else state)
            with torch.no_grad():
                action, state = (x for x in step.eval()(*inputs))
            got = session.run(list(OUTPUT_NAMES), dict(zip(INPUT_NAMES, (x.numpy() for x in inputs))))
            worst = max(worst, float(np.abs(got[0] - action.numpy()).max()),
                        float(np.abs(got[1] - state.numpy()).max()))
    if worst > atol:
        raise RuntimeError(f"exported graph differs from torch by {worst:.2e} (> {atol})")
    return worst


def export_bundle(run_dir: Path, out_dir: Path, name: str | None = None) -> BundleSpec:
    """Write `policy.onnx` and `policy.json` for the run's checkpoint into `out_dir`."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    try:
        policy = exportable_policy(run_dir)
    except RuntimeError as err:   # weights that do not fit this code's agent, or a policy no bundle takes
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RuntimeError(f"cannot export {run_dir}: {first_line}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    # Export beside the bundle, check, then move into place: a failed export leaves the old bundle.
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_onnx = Path(tmp) / ONNX_FILE
        try:
            export_policy(policy.step, policy.image_size, policy.state_size, tmp_onnx)
            check_export(policy.step, policy.image_size, policy.state_size, tmp_onnx)
        except Exception as err:   # exporter and onnxruntime raise their own types
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise RuntimeError(f"export of {run_dir} failed: {first_line}") from None
        tmp_onnx.replace(out_dir / ONNX_FILE)
    spec = BundleSpec(
        image_height=policy.image_size, image_width=policy.image_size, state_size=policy.state_size,
        max_linear_speed=policy.action_scale["max_linear_speed"],
        max_angular_speed=policy.action_scale["max_angular_speed"],
        name=name or out_dir.name, training=policy.training,
        evaluation=latest_evaluation(run_dir, training_env_label(policy.training)),
    )
    write_bundle_json(out_dir, spec)
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a training run directory (holds checkpoint.pt)")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory, e.g. models/recore_pointnav")
    parser.add_argument("--name", help="bundle name in policy.json (default: the --out directory's name)")
    args = parser.parse_args(argv)
    try:
        spec = export_bundle(args.run_dir, args.out, args.name)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/{ONNX_FILE} and policy.json: {spec.training['method']}, "
          f"{spec.training['steps']} steps, state {spec.state_size}, "
          f"evaluation {json.dumps({k: v.get('success_rate') for k, v in spec.evaluation.items()})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
