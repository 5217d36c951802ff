"""The online training loop: environments feed an episode replay, the agent updates while they
simulate, and the deterministic policy is evaluated on fixed episodes as it learns.

Several environment processes (spawned, `recore_nav.sim.factory`) feed an episode replay. After
a prefill (random actions, or the simulator's shortest-path expert with action noise:
`run.prefill_policy`), every environment step owes `train_ratio / (batch_size * seq_len)`
updates (DreamerV3's replayed-steps ratio), run while the environments simulate the next step.
Exploration samples the actor. Every `eval_every` steps the deterministic policy runs the
fixed-seed evaluation episodes of `training.evaluation.episodes` on each evaluation split.

Run directory: `config.yaml`, `metrics.jsonl` (one JSON object a line: kind "train" with the
losses and throughput, kind "eval" with success rate, SPL, collisions, length and return per
split), `tb/` (TensorBoard scalars and auxiliary-prediction images), `checkpoint.pt` +
`replay_<step>.npz` (atomic; `training/checkpoint.py`). A resumed run continues with the same
step count, weights, optimiser and RNG states and replay.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recore_nav.episodes import EpisodeRecord, summarize, summary_values
from recore_nav.sim.factory import make_vector_env
from recore_nav.task import ACTION_DIM
from training.checkpoint import checkpoint_on_exit, load_checkpoint, load_replay, save_checkpoint
from training.config import TrainConfig, config_to_dict
from training.data.replay import EpisodeReplay
from training.environments.collector import Collector, ExpertPolicy, RandomPolicy
from training.evaluation.episodes import EVAL_SEED_BASE, EvaluationSpec, evaluate
from training.methods.recore import Agent
from training.run_log import MetricsLog, write_config



class AgentPolicy:
    """The agent's recurrent policy step as a `BatchPolicy` for N environments: its state and
    previous action per environment, zeroed when an environment starts an episode."""

    def __init__(self, agent: Agent, num_envs: int, explore: bool):
        self.agent, self.explore = agent, explore
        self.state = agent.initial_state(num_envs)
        self.prev_action = np.zeros((num_envs, ACTION_DIM), np.float32)

    def reset(self, index: int) -> None:
        with torch.inference_mode():   # the state comes from inference-mode steps
            self.state[index] = 0.0
        self.prev_action[index] = 0.0

    def act(self, obs: dict[str, np.ndarray], infos: list[dict[str, Any]]) -> np.ndarray:
        action, self.state = self.agent.policy_step(torch.from_numpy(np.ascontiguousarray(obs["rgb"])),
                                                    torch.from_numpy(np.asarray(obs["goal"], np.float32)),
                                                    torch.from_numpy(self.prev_action), self.state,
                                                    explore=self.explore)
        self.prev_action = np.clip(action.cpu().numpy(), -1.0, 1.0).astype(np.float32)
        return self.prev_action


class Trainer:
    """One training run in `run_dir`; `run()` trains until `run.total_steps` or a signal."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, env_kind: str, resume: bool, reset_actor: bool = False):
        self.cfg, self.run_dir, self.env_kind, self.reset_actor = cfg, Path(run_dir), env_kind, reset_actor
        self.run_dir.mkdir(parents=True, exist_ok=True)
        run, agent_cfg = cfg.run, cfg.agent
        torch.manual_seed(run.seed)
        self.rng = np.random.default_rng(run.seed)
        self.agent = Agent(agent_cfg, image_size=cfg.env.image_size, device=run.device)
        self.replay = EpisodeReplay(run.replay_capacity, cfg.env.image_size, cfg.env.max_episode_steps)
        full_replay = run.replay_capacity * self.replay.bytes_per_step
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if full_replay > 0.6 * memory:
            print(f"warning: a full replay of {run.replay_capacity} steps needs {full_replay / 2**30:.1f} GiB, "
                  f"this machine has {memory / 2**30:.1f} GiB; lower run.replay_capacity", file=sys.stderr)
        self.step = 0                  # environment steps, summed over environments
        self.updates = 0
        self.update_credit = 0.0       # updates owed but not yet run
        self.episodes = 0
        self.next = {"log": run.log_every, "eval": run.eval_every, "checkpoint": run.checkpoint_every}
        self.action_scale: dict[str, float] | None = None   # the environment's speed limits, once made
        if resume:
            self._restore()
        write_config(self.run_dir, config_to_dict(cfg))
        self.log = MetricsLog(self.run_dir, resume_step=self.step if resume else None)
        self.updates_per_step = run.train_ratio / (agent_cfg.batch_size * agent_cfg.seq_len)
        self.stop_requested = False
        self._losses: dict[str, float] = {}
        self._loss_count = 0
        self._train_episodes: list[EpisodeRecord] = []
        self._last_eval: dict[str, dict[str, float]] = {}
        self._last_eval_step = -1

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step, "updates": self.updates, "update_credit": self.update_credit,
            "episodes": self.episodes, "next": dict(self.next), "env": self.env_kind,
            "action_scale": self.action_scale,
            "config": config_to_dict(self.cfg), "method": self.cfg.agent.method,
            "agent": self.agent.state_dict(), "optimizers": self.agent.optimizer_state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": self.rng.bit_generator.state,
        }

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.state(), self.replay)

    def _restore(self) -> None:
        state = load_checkpoint(self.run_dir)
        self.agent.load_training_state(state["agent"], state["optimizers"], fresh_actor=self.reset_actor)
        self.action_scale = state.get("action_scale")
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step, self.updates, self.episodes = int(state["step"]), int(state["updates"]), int(state["episodes"])
        self.update_credit = float(state["update_credit"])
        self.next = {k: int(v) for k, v in state["next"].items()}
        replay = load_replay(self.run_dir, state)
        if replay is not None:
            replay.capacity = self.cfg.run.replay_capacity
            self.replay = replay

    def write_metrics(self, record: dict[str, Any]) -> None:
        self.log.write(self.step, record)

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        from tqdm import tqdm

        cfg, run = self.cfg, self.cfg.run
        env_seed = int(self.rng.integers(0, EVAL_SEED_BASE // 2))   # never an evaluation seed
        envs = make_vector_env(self.env_kind, num_envs=cfg.env.num_envs, split=cfg.env.train_split,
                               seed=env_seed, image_size=cfg.env.image_size, max_steps=cfg.env.max_episode_steps,
                               **cfg.env.env_kwargs())
        # The speed limits an action of 1 means in this environment: the export writes them into
        # the bundle, so the robot drives with the scale the policy learned.
        self.action_scale = {name: float(envs.get_attr(name)[0]) for name in ("max_linear_speed", "max_angular_speed")}
        collector = Collector(envs, replay=self.replay)
        explore = AgentPolicy(self.agent, envs.num_envs, explore=True)
        if run.prefill_policy == "expert":
            prefill_policy = ExpertPolicy(envs.num_envs, run.expert_noise, self.rng)
        else:
            prefill_policy = RandomPolicy(envs.num_envs, self.rng)
        progress = tqdm(total=run.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                        disable=None, desc=f"{cfg.agent.method}")
        last_time, last_step, last_updates = time.time(), self.step, self.updates
        try:
            with checkpoint_on_exit(self.save):
                while self.step < run.total_steps and not self.stop_requested:
                    prefilling = self.step < run.prefill_steps
                    if not prefilling:
                        self.update_credit += envs.num_envs * self.updates_per_step
                    try:
                        finished = collector.step(prefill_policy if prefilling else explore,
                                                  while_stepping=None if prefilling else self._train)
                    except Exception:
                        if self.stop_requested:   # a worker went down with the signal; save what we have
                            break
                        raise
                    self.step += envs.num_envs
                    self.episodes += len(finished)
                    self._train_episodes.extend(finished)
                    progress.update(envs.num_envs)
                    if self.step >= self.next["log"]:
                        self.next["log"] += run.log_every
                        now = time.time()
                        rates = {"env_steps_per_s": (self.step - last_step) / max(now - last_time, 1e-9),
                                 "updates_per_s": (self.updates - last_updates) / max(now - last_time, 1e-9)}
                        last_time, last_step, last_updates = now, self.step, self.updates
                        self._log_train(rates)
                        progress.set_postfix(env_sps=f"{rates['env_steps_per_s']:.1f}",
                                             ups=f"{rates['updates_per_s']:.2f}",
                                             success=f"{self._last_eval.get('train', {}).get('success_rate', float('nan')):.2f}")
                    if self.step >= self.next["eval"]:
                        self.next["eval"] += run.eval_every
                        self.evaluate()
                    if self.step >= self.next["checkpoint"]:
                        self.next["checkpoint"] += run.checkpoint_every
                        self.save()
                if not self.stop_requested and self._last_eval_step != self.step:
                    self.evaluate()   # the run's final numbers
        finally:
            progress.close()
            self.log.flush()
            envs.close(terminate=self.stop_requested)
        print(f"{'stopped' if self.stop_requested else 'finished'} at step {self.step} "
              f"({self.updates} updates); checkpoint in {self.run_dir}", flush=True)

    def _train(self) -> None:
        """Run the updates owed so far (called while the environments step)."""
        if self.replay.num_steps == 0:
            return
        agent_cfg = self.cfg.agent
        while self.update_credit >= 1.0 and not self.stop_requested:
            batch = self.replay.sample(agent_cfg.batch_size, agent_cfg.seq_len, self.rng)
            info = self.agent.update({k: torch.from_numpy(v) for k, v in batch.items()})
            self.update_credit -= 1.0
            self.updates += 1
            for key, value in info.items():
                self._losses[key] = self._losses.get(key, 0.0) + value
            self._loss_count += 1

    def _log_train(self, rates: dict[str, float]) -> None:
        record: dict[str, Any] = {"kind": "train", "updates": self.updates, "episodes": self.episodes,
                                  "replay_steps": self.replay.num_steps, **rates}
        if self._loss_count:
            record.update({k: v / self._loss_count for k, v in self._losses.items()})
        if self._train_episodes:
            values = summary_values(summarize(self._train_episodes))
            record.update({f"episode_{k}": v for k, v in values.items()})
        self._losses, self._loss_count, self._train_episodes = {}, 0, []
        self.write_metrics(record)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Fixed-seed episodes of the deterministic policy on every evaluation split (the
        episodes `training/evaluate.py` runs the exported bundle on)."""
        cfg = self.cfg
        for split in cfg.env.eval_splits:
            spec = EvaluationSpec(env=self.env_kind, split=split, episodes=cfg.run.eval_episodes,
                                  max_steps=cfg.env.max_episode_steps, image_size=cfg.env.image_size,
                                  workers=cfg.env.num_envs, videos=0, env_kwargs=cfg.env.env_kwargs())
            result = evaluate(lambda num_envs: AgentPolicy(self.agent, num_envs, explore=False), spec)
            values = summary_values(summarize(result.episodes))
            self._last_eval[split] = values
            self.write_metrics({"kind": "eval", "split": split, **values})
        if self.replay.num_steps > 0:
            batch = self.replay.sample(1, min(8, self.cfg.agent.seq_len), self.rng)
            with torch.no_grad():
                images = self.agent.aux_prediction({k: torch.from_numpy(v) for k, v in batch.items()})
            for name, image in images.items():
                self.log.writer.add_images(name, image.cpu().numpy(), self.step, dataformats="NHWC")
        self.log.flush()
        self._last_eval_step = self.step
        return self._last_eval
