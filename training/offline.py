"""The offline training loop: CRL or WM-CRL on a fixed dataset, evaluated as it learns.

Each update draws states and goals from the dataset (`training.data.goal_sampling`: goals are
future states of the same trajectory), and, for WM-CRL, short sequences for the world model.
Goals are what the evaluation task gives the policy: for state datasets (OGBench pointmaze) the
goal state itself; for the navigation datasets (the embedded simulator, robot logs) the goal
step's position in the robot frame of the current step, (distance, cos bearing, sin bearing),
which is how the navigation node and the simulator give goals. Every `eval_every` updates the
deterministic policy runs OGBench's evaluation tasks or the embedded simulator's fixed episodes.

Run directory: `config.yaml`, `metrics.jsonl` (kind "train": losses and throughput; kind
"eval": success per task or split), `eval_episodes.json` (every episode of the latest
evaluation), `tb/` (TensorBoard), `checkpoint.pt` (atomic; `--resume` continues with the same
update count, weights, optimiser and RNG states); with `run.eval_node_params`, `eval_bundle/` (the
policy the latest evaluation drove through the navigation node); with `run.keep_best`, `best/`
(`checkpoint.pt` of the best evaluation so far and `best.json`, its update and success).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recore_nav.episodes import summarize, summary_values
from recore_nav.geometry import goals_in_robot_frame
from recore_nav.task import ACTION_DIM, GOAL_DIM
from training.checkpoint import checkpoint_on_exit, has_checkpoint, load_checkpoint, save_checkpoint
from training.config import ConfigError, config_to_dict
from training.data.datasets import OfflineDataset
from training.data.goal_sampling import GoalSampler, GoalSamplingConfig
from training.evaluation.episodes import EVAL_SEED_BASE, VALIDATION_SEED_BASE
from training.methods.crl import CRLConfig, CRLInputs
from training.methods.wm_crl import WMCRLAgent, WorldModelConfig
from training.run_log import MetricsLog, write_config

if TYPE_CHECKING:
    from training.evaluation.node_policy import NodePolicies

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_EPISODES_FILE = "eval_episodes.json"
BEST_DIR = "best"              # the checkpoint of the best evaluation (run.keep_best) and best.json
BEST_FILE = "best.json"
SELECTION_KEY = "selection"    # in best/checkpoint.pt: the update and validation success it was chosen for
EVAL_BUNDLE_DIR = "eval_bundle"   # the policy bundle the node-driven evaluation runs
STATE_KEYS = ("observations", "rgb")
GOAL_KINDS = ("state", "relative_position")


@dataclass
class DataConfig:
    state: str = "observations"     # what the networks see of a state: observations (vectors) or rgb
    goal: str = "state"             # state (OGBench) or relative_position (navigation; needs robot_pose)
    # Images only: a state is the last `frames` images, stacked on the channels (the first one
    # repeated at a trajectory's start), so a policy sees whether it moved: a robot pressing on a
    # wall sees the same picture twice, which one image cannot show.
    frames: int = 1
    sampling: GoalSamplingConfig = field(default_factory=GoalSamplingConfig)


@dataclass
class OfflineRunConfig:
    steps: int = 1_000_000          # updates (OGBench: 1M at batch 1024)
    log_every: int = 1_000
    eval_every: int = 100_000
    eval_episodes: int = 50         # a task (OGBench) or a split (embedded simulator)
    eval_env: str = "none"          # none, an OGBench env name (pointmaze-medium-navigate-v0), or embedded
    eval_splits: tuple[str, ...] = ("train", "ood")   # embedded only
    # Embedded only: episode i of an evaluation uses reset seed eval_seed_base + i. The default is
    # evaluate.py's, so a run's curve and its bundle's test meet the same episodes.
    eval_seed_base: int = EVAL_SEED_BASE
    # Embedded only: a node parameters file (config/sim.yaml). The evaluation then exports the
    # policy and drives it through the navigation node's controller and collision monitor, as
    # `evaluate.py --node-params` does, so it measures the policy as a robot runs it.
    eval_node_params: str = ""
    # Keep the checkpoint of the evaluation with the highest success in best/ (export it with
    # `export_onnx.py RUN/best`). Choosing on the test episodes would flatter the choice, so this
    # needs eval_seed_base off EVAL_SEED_BASE's episodes (VALIDATION_SEED_BASE).
    keep_best: bool = False
    checkpoint_every: int = 10_000
    seed: int = 0


@dataclass
class OfflineConfig:
    data: DataConfig = field(default_factory=DataConfig)
    run: OfflineRunConfig = field(default_factory=OfflineRunConfig)
    agent: CRLConfig = field(default_factory=CRLConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)

    @property
    def method(self) -> str:
        return "crl" if self.world_model.integration == "none" else "wm_crl"


def validate_offline(cfg: OfflineConfig) -> OfflineConfig:
    if cfg.data.state not in STATE_KEYS:
        raise ConfigError(f"data.state must be one of {STATE_KEYS}, not {cfg.data.state!r}")
    if cfg.data.goal not in GOAL_KINDS:
        raise ConfigError(f"data.goal must be one of {GOAL_KINDS}, not {cfg.data.goal!r}")
    if cfg.agent.precision not in ("fp32", "bf16"):
        raise ConfigError(f"agent.precision must be fp32 or bf16, not {cfg.agent.precision!r}")
    if cfg.agent.goal_distance_cap < 0 or (cfg.agent.goal_distance_cap > 0 and cfg.data.goal != "relative_position"):
        raise ConfigError("agent.goal_distance_cap needs data.goal=relative_position (goals as distance and "
                          f"bearing) and must be >= 0, not {cfg.agent.goal_distance_cap}")
    if cfg.data.frames < 1 or (cfg.data.frames > 1 and cfg.data.state != "rgb"):
        raise ConfigError(f"data.frames must be 1, or more with data.state=rgb, not {cfg.data.frames}")
    if cfg.data.state == "rgb" and cfg.data.goal == "state":
        raise ConfigError("image states need data.goal=relative_position (goals are not images here)")
    run = cfg.run
    if (run.eval_node_params or run.keep_best) and run.eval_env != "embedded":
        raise ConfigError("run.eval_node_params and run.keep_best need run.eval_env=embedded")
    if run.eval_node_params:
        node_parameters(run.eval_node_params)   # a bad file fails here, before anything trains
    if run.keep_best and run.eval_seed_base < VALIDATION_SEED_BASE:
        raise ConfigError(f"run.keep_best chooses a checkpoint on its evaluations: give them episodes of their own "
                          f"(run.eval_seed_base={VALIDATION_SEED_BASE}), not evaluate.py's from {EVAL_SEED_BASE}")
    try:
        cfg.world_model.roles(goals_are_states=cfg.data.goal == "state")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    return cfg


def node_parameters(path: str) -> dict[str, Any]:
    """The navigation node's parameters from `path` (relative to the working directory, or else
    to the repository, where config/sim.yaml lives), checked as the node checks them."""
    from training.evaluation.node_policy import node_parameters as read_node_parameters

    resolved = Path(path) if Path(path).is_file() or Path(path).is_absolute() else REPO_ROOT / path
    try:
        return read_node_parameters(resolved)
    except Exception as err:   # a missing file, YAML or a bad value: one line
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ConfigError(f"run.eval_node_params {path}: {first_line}") from None


def relative_goals(poses: np.ndarray, current: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The goal steps' positions in the current steps' robot frames: (distance, cos, sin) [B, 3]."""
    return goals_in_robot_frame(poses[current], poses[goal, :2])


class OfflineBatches:
    """Tensors for updates, gathered from a dataset at the sampler's indices."""

    def __init__(self, dataset: OfflineDataset, cfg: OfflineConfig, device: torch.device):
        self.dataset, self.cfg, self.device = dataset, cfg, device
        self.states = dataset.rgb if cfg.data.state == "rgb" else dataset.observations
        if self.states is None:
            raise ConfigError(f"{dataset.source} has no {cfg.data.state} for data.state")
        if cfg.data.goal == "relative_position" and dataset.robot_pose is None:
            raise ConfigError(f"{dataset.source} has no robot_pose for data.goal=relative_position")
        # Goals as OGBench samples them; world-model sequences to each trajectory's real last step.
        self.sampler = GoalSampler(dataset.ogbench_terminals, dataset.valids, cfg.data.sampling,
                                   trajectory_ends=dataset.ends)

    @property
    def state_shape(self) -> tuple[int, ...]:
        shape = tuple(self.states.shape[1:])
        return shape if self.cfg.data.frames == 1 else (*shape[:-1], shape[-1] * self.cfg.data.frames)

    def state_at(self, indices: np.ndarray) -> np.ndarray:
        """The states at step `indices` (any shape): with `data.frames` > 1 the images of the
        last `frames` steps of the trajectory, oldest first, stacked on the channels."""
        frames = self.cfg.data.frames
        if frames == 1:
            return self.states[indices]
        starts = self.dataset.starts[np.searchsorted(self.dataset.ends, indices)]
        return np.concatenate([self.states[np.maximum(indices - back, starts)]
                               for back in range(frames - 1, -1, -1)], axis=-1)

    @property
    def goal_dim(self) -> int:
        return GOAL_DIM if self.cfg.data.goal == "relative_position" else int(np.prod(self.state_shape))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def goals(self, current: np.ndarray, goal: np.ndarray) -> np.ndarray:
        if self.cfg.data.goal == "relative_position":
            return relative_goals(self.dataset.robot_pose, current, goal)
        return self.states[goal].reshape(len(goal), -1).astype(np.float32)

    def crl_inputs(self, agent: WMCRLAgent, batch_size: int, rng: np.random.Generator) -> CRLInputs:
        batch = self.sampler.sample(batch_size, rng)
        return agent.crl_inputs(self._tensor(self.state_at(batch.states)),
                                self._tensor(self.dataset.actions[batch.states]),
                                self._tensor(self.goals(batch.states, batch.value_goals)),
                                self._tensor(self.goals(batch.states, batch.actor_goals)))

    def sequences(self, batch_size: int, horizon: int, rng: np.random.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, valid = self.sampler.sequences(batch_size, horizon, rng)
        return (self._tensor(self.state_at(steps)), self._tensor(self.dataset.actions[steps[:, :-1]]),
                self._tensor(valid))


class OfflineTrainer:
    """One offline run in `run_dir`; `run()` trains until `run.steps` updates or a signal."""

    def __init__(self, cfg: OfflineConfig, dataset: OfflineDataset, run_dir: Path, resume: bool = False,
                 device: str = "cpu"):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        torch.manual_seed(cfg.run.seed)
        self.rng = np.random.default_rng(cfg.run.seed)
        self.batches = OfflineBatches(dataset, cfg, self.device)
        self.agent = WMCRLAgent(cfg.agent, cfg.world_model, self.batches.state_shape, self.batches.goal_dim,
                                ACTION_DIM, goals_are_states=cfg.data.goal == "state").to(self.device)
        self.step = 0
        self.best_success = -1.0   # run.keep_best: the validation success of the checkpoint in best/
        self.dataset_source = dataset.source
        if resume:
            self._restore()
        write_config(self.run_dir, config_to_dict(cfg))
        self.log = MetricsLog(self.run_dir, resume_step=self.step if resume else None)
        self.stop_requested = False
        self.last_eval: dict[str, float] = {}

    # -- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"step": self.step, "method": self.cfg.method, "config": config_to_dict(self.cfg),
                "dataset": str(self.dataset_source), "state_shape": list(self.batches.state_shape),
                "goal_dim": self.batches.goal_dim, "agent": self.agent.state_dict(),
                "optimizers": self.agent.optimizer_state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": self.rng.bit_generator.state}

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.state())

    def _restore(self) -> None:
        state = load_checkpoint(self.run_dir)
        try:
            self.agent.load_state_dict(state["agent"])
        except RuntimeError:   # e.g. --set data.frames or network sizes other than the run's
            raise ConfigError(f"{self.run_dir}'s checkpoint does not fit these networks: a --set on --resume "
                              "changed the state's shape or the network sizes") from None
        self.agent.load_optimizer_state_dict(state["optimizers"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step = int(state["step"])
        best_dir = self.run_dir / BEST_DIR
        if has_checkpoint(best_dir):   # the choice so far, from the checkpoint it chose (written atomically)
            self.best_success = float(load_checkpoint(best_dir)[SELECTION_KEY]["success_rate"])

    def write_metrics(self, record: dict[str, Any]) -> None:
        self.log.write(self.step, record)

    # -- the loop -----------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        cfg = self.cfg
        sequences = (self.batches.sequences(cfg.agent.batch_size, cfg.world_model.horizon, self.rng)
                     if self.agent.world_model is not None else None)
        info = self.agent.update(sequences, lambda: self.batches.crl_inputs(self.agent, cfg.agent.batch_size, self.rng))
        self.step += 1
        return {k: float(v) for k, v in info.items()}

    def run(self) -> None:
        from tqdm import tqdm

        run = self.cfg.run
        progress = tqdm(total=run.steps, initial=self.step, unit="update", dynamic_ncols=True, disable=None,
                        desc=self.cfg.method)
        sums: dict[str, float] = {}
        count, last_time, last_step = 0, time.time(), self.step
        try:
            with checkpoint_on_exit(self.save):
                while self.step < run.steps and not self.stop_requested:
                    for key, value in self.update().items():
                        sums[key] = sums.get(key, 0.0) + value
                    count += 1
                    progress.update(1)
                    if self.step % run.log_every == 0:
                        now = time.time()
                        rate = (self.step - last_step) / max(now - last_time, 1e-9)
                        self.write_metrics({"kind": "train", "updates_per_s": rate,
                                            **{k: v / count for k, v in sums.items()}})
                        progress.set_postfix(ups=f"{rate:.1f}",
                                             **{k.split("/")[-1]: f"{v:.2f}" for k, v in self.last_eval.items()})
                        sums, count, last_time, last_step = {}, 0, now, self.step
                    if run.eval_env != "none" and self.step % run.eval_every == 0:
                        self.evaluate()
                    if self.step % run.checkpoint_every == 0:
                        self.save()
                if not self.stop_requested and run.eval_env != "none" and self.step % run.eval_every != 0:
                    self.evaluate()
        finally:
            progress.close()
            self.log.flush()
        print(f"{'stopped' if self.stop_requested else 'finished'} at update {self.step}; checkpoint in {self.run_dir}",
              flush=True)

    def evaluate(self) -> dict[str, float]:
        """The deterministic policy on the evaluation tasks; success per task (or split) and overall."""
        from training.evaluation.offline import evaluate_offline_policy

        run = self.cfg.run
        node = self._node_policies() if run.eval_node_params else None
        results = evaluate_offline_policy(self.agent, self.cfg, run.eval_episodes,
                                          image_size=self.batches.state_shape[0], make_policy=node)
        self.agent.train()
        # Every episode of the latest evaluation, for tables that pair runs episode by episode.
        record: dict[str, Any] = {"step": self.step, "episodes": {name: [asdict(e) for e in episodes]
                                                                  for name, episodes in results.items()}}
        if node is not None:
            record["navigation_node_status_steps"] = node.status_steps()
        (self.run_dir / EVAL_EPISODES_FILE).write_text(json.dumps(record))
        seeds = {"seed_base": run.eval_seed_base} if run.eval_env == "embedded" else {}
        success: dict[str, float] = {}
        for name, episodes in [*results.items(), ("all", [e for part in results.values() for e in part])]:
            # OGBench's tasks have no SPL: leave out what was not measured.
            values = {k: v for k, v in summary_values(summarize(episodes)).items() if math.isfinite(v)}
            self.write_metrics({"kind": "eval", "task": name, **seeds, **values})
            success[name] = values["success_rate"]
        overall = success.pop("all")
        self.last_eval = {"eval/success": overall}
        # Strictly better only: of equal checkpoints the earlier is kept.
        if run.keep_best and overall > self.best_success:
            self.keep_as_best(overall, success)
        self.log.flush()
        return self.last_eval

    def _node_policies(self) -> NodePolicies:
        """The current policy, exported as a user exports it, behind the navigation node's code."""
        import tempfile

        from training.evaluation.node_policy import NodePolicies
        from training.export_onnx import export_bundle

        # Exported from a scratch checkpoint: the run's own stays where the loop last saved it, so
        # a run stopped during this evaluation evaluates this update again when resumed.
        with tempfile.TemporaryDirectory(dir=self.run_dir) as scratch:
            save_checkpoint(Path(scratch), self.state())
            export_bundle(Path(scratch), self.run_dir / EVAL_BUNDLE_DIR)
        return NodePolicies(self.run_dir / EVAL_BUNDLE_DIR, node_parameters(self.cfg.run.eval_node_params))

    def keep_as_best(self, success: float, per_split: dict[str, float]) -> None:
        """The current weights become best/checkpoint.pt, which carries the choice (update,
        validation success) in one atomic write; best.json repeats it for people."""
        self.best_success = success
        selection = {"step": self.step, "success_rate": success, "per_split": per_split,
                     "seed_base": self.cfg.run.eval_seed_base, "episodes": self.cfg.run.eval_episodes}
        best_dir = self.run_dir / BEST_DIR
        save_checkpoint(best_dir, {**self.state(), SELECTION_KEY: selection})
        (best_dir / BEST_FILE).write_text(json.dumps(selection, indent=2) + "\n")
