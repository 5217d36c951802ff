"""Online training of the ReCoRe agent (or any table row) against point-goal environments.

    python training/train_igibson.py --env embedded --config config/train/recore_depth.yaml \\
        [--config more.yaml ...] [--set run.total_steps=200000 ...] [--run-dir runs/recore_depth]
        [--resume [--reset-actor]] [--threads N]

Several environment processes (spawned) feed an episode replay. After a prefill (random actions,
or the simulator's shortest-path expert with action noise: `run.prefill_policy`), every
environment step owes `train_ratio / (batch_size * seq_len)` updates (DreamerV3's replayed-steps
ratio), run while the environments simulate the next step. Exploration samples the actor. Every `eval_every` steps the deterministic policy runs fixed-seed episodes on each
evaluation split (see `training/collect.py`).

Run directory: `config.yaml`, `metrics.jsonl` (one JSON object a line: kind "train" with the
losses and throughput, kind "eval" with success rate, SPL and return per split), `tb/`
(TensorBoard scalars and auxiliary-prediction images), `checkpoint.pt` + `replay_<step>.npz`
(atomic; see `training/checkpoint.py`). `--resume` continues with the same step count,
weights, optimiser and RNG states and replay; SIGINT/SIGTERM save a checkpoint before exiting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):   # run as `python training/train_igibson.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import yaml

from training.agent import Agent
from training.checkpoint import has_checkpoint, load_checkpoint, load_replay, save_checkpoint
from training.collect import (EVAL_SEED_BASE, Collector, EpisodeResult, expert_policy, make_vector_env,
                              run_eval_episodes)
from training.config import ConfigError, TrainConfig, config_to_dict, load_config
from training.cpu_tuning import configure_cpu
from training.igibson_env import IGibsonMissing
from training.replay import EpisodeReplay

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"


def agent_policy(agent: Agent, num_envs: int, explore: bool):
    """A batch policy for `Collector`: the agent's recurrent step, its state reset at `is_first`."""
    state = agent.initial_state(num_envs)

    def act(obs: dict[str, np.ndarray], prev_action: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        nonlocal state
        keep = torch.as_tensor(~is_first, dtype=torch.float32, device=agent.device)[:, None]
        action, state = agent.policy_step(torch.from_numpy(np.ascontiguousarray(obs["rgb"])),
                                          torch.from_numpy(np.asarray(obs["goal"], np.float32)),
                                          torch.from_numpy(np.asarray(prev_action, np.float32)),
                                          state * keep, explore=explore)
        return action.cpu().numpy()
    return act


def summarize_episodes(results: list[EpisodeResult]) -> dict[str, float]:
    if not results:
        return {}
    return {
        "success_rate": float(np.mean([r.success for r in results])),
        "spl": float(np.mean([r.spl for r in results])),
        "return": float(np.mean([r.episode_return for r in results])),
        "length": float(np.mean([r.length for r in results])),
        "collisions": float(np.mean([r.collisions for r in results])),
        "episodes": len(results),
    }


class Trainer:
    """One training run in `run_dir`; `run()` trains until `run.total_steps` or a signal."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, env_kind: str, resume: bool, reset_actor: bool = False):
        from torch.utils.tensorboard import SummaryWriter

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
        if resume:
            self._restore()
        else:
            (self.run_dir / METRICS_FILE).unlink(missing_ok=True)
        # Written on resume too, so `--set` overrides given then carry into later resumes.
        (self.run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        self._drop_metrics_after(self.step)
        # purge_step drops TensorBoard events written after the checkpoint we resumed from.
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step if resume else None)
        self.updates_per_step = run.train_ratio / (agent_cfg.batch_size * agent_cfg.seq_len)
        self.stop_requested = False
        self._losses: dict[str, float] = {}
        self._loss_count = 0
        self._train_episodes: list[EpisodeResult] = []
        self._last_eval: dict[str, dict[str, float]] = {}
        self._last_eval_step = -1

    # -- checkpoints ------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "step": self.step, "updates": self.updates, "update_credit": self.update_credit,
            "episodes": self.episodes, "next": dict(self.next), "env": self.env_kind,
            "config": config_to_dict(self.cfg), "method": self.cfg.agent.method,
            "agent": self.agent.state_dict(), "optimizers": self.agent.optimizer_state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": self.rng.bit_generator.state,
        }

    def save(self) -> None:
        save_checkpoint(self.run_dir, self.state(), self.replay)

    def _restore(self) -> None:
        state = load_checkpoint(self.run_dir)
        if self.reset_actor:
            # A new actor (say, another agent.behavior.actor_modes) on the run's world model,
            # critic and replay: everything but the actor and its optimiser continues.
            # (the policy-step modules share the actor, so its weights appear under them too)
            agent_state = {k: v for k, v in state["agent"].items() if "actor" not in k.split(".")}
            missing, unexpected = self.agent.load_state_dict(agent_state, strict=False)
            if unexpected or any("actor" not in k.split(".") for k in missing):
                raise RuntimeError(f"checkpoint does not fit this agent beyond its actor: missing {missing}, "
                                   f"unexpected {unexpected}")
            optimizers = {k: v for k, v in state["optimizers"].items() if k != "actor"}
            optimizers["actor"] = self.agent.optimizers["actor"].state_dict()
            self.agent.load_optimizer_state_dict(optimizers)
        else:
            self.agent.load_state_dict(state["agent"])
            self.agent.load_optimizer_state_dict(state["optimizers"])
        torch.set_rng_state(state["torch_rng"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step, self.updates, self.episodes = int(state["step"]), int(state["updates"]), int(state["episodes"])
        self.update_credit = float(state["update_credit"])
        self.next = {k: int(v) for k, v in state["next"].items()}
        replay = load_replay(self.run_dir, state)
        if replay is not None:
            replay.capacity = self.cfg.run.replay_capacity
            self.replay = replay

    def _drop_metrics_after(self, step: int) -> None:
        # Records newer than the checkpoint belong to the lost part of an interrupted run.
        path = self.run_dir / METRICS_FILE
        if not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in kept))

    # -- logging ----------------------------------------------------------------------------
    def write_metrics(self, record: dict[str, Any]) -> None:
        record = {"step": self.step, "time": time.time(), **record}
        with open(self.run_dir / METRICS_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        from tqdm import tqdm

        cfg, run = self.cfg, self.cfg.run
        env_seed = int(self.rng.integers(0, EVAL_SEED_BASE // 2))   # never an evaluation seed
        envs = make_vector_env(self.env_kind, cfg.env.num_envs, cfg.env.train_split, env_seed,
                               cfg.env.image_size, cfg.env.max_episode_steps)
        collector = Collector(envs, replay=self.replay)
        explore = agent_policy(self.agent, envs.num_envs, explore=True)
        if run.prefill_policy == "expert":
            prefill_policy = expert_policy(collector, run.expert_noise, self.rng)
        else:
            prefill_policy = lambda obs, prev, first: self.rng.uniform(-1.0, 1.0, (envs.num_envs, 2))  # noqa: E731
        progress = tqdm(total=run.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                        disable=None, desc=f"{cfg.agent.method}")
        last_time, last_step, last_updates = time.time(), self.step, self.updates
        try:
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
            self.save()
            self.writer.flush()
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
        record.update({f"episode_{k}": v for k, v in summarize_episodes(self._train_episodes).items()})
        self._losses, self._loss_count, self._train_episodes = {}, 0, []
        self.write_metrics(record)
        for key, value in record.items():
            if key not in ("kind", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}", value, self.step)

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Fixed-seed episodes of the deterministic policy on every evaluation split."""
        cfg = self.cfg
        episodes = cfg.run.eval_episodes
        for split in cfg.env.eval_splits:
            envs = make_vector_env(self.env_kind, min(cfg.env.num_envs, episodes), split, EVAL_SEED_BASE,
                                   cfg.env.image_size, cfg.env.max_episode_steps)
            try:
                results = run_eval_episodes(envs, lambda: agent_policy(self.agent, envs.num_envs, False),
                                            episodes, EVAL_SEED_BASE)
            finally:
                envs.close()
            summary = summarize_episodes(results)
            self._last_eval[split] = summary
            self.write_metrics({"kind": "eval", "split": split, **summary})
            for key, value in summary.items():
                self.writer.add_scalar(f"eval_{split}/{key}", value, self.step)
        if self.replay.num_steps > 0:
            batch = self.replay.sample(1, min(8, self.cfg.agent.seq_len), self.rng)
            with torch.no_grad():
                images = self.agent.aux_prediction({k: torch.from_numpy(v) for k, v in batch.items()})
            for name, image in images.items():
                self.writer.add_images(name, image.cpu().numpy(), self.step, dataformats="NHWC")
        self.writer.flush()
        self._last_eval_step = self.step
        return self._last_eval


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=("embedded", "igibson"), default="embedded")
    parser.add_argument("--config", type=Path, action="append",
                        help="config/train/<name>.yaml; repeat to merge recipes left to right, e.g. the "
                             "shipped sizes then a table row (on --resume: the run's own config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set run.total_steps=1000 (repeatable)")
    parser.add_argument("--run-dir", type=Path, help="default runs/<config name>")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --run-dir")
    parser.add_argument("--reset-actor", action="store_true",
                        help="with --resume: a fresh actor (e.g. after --set agent.behavior.actor_modes=2) "
                             "on the run's world model, critic and replay")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the CPUs left over by the env processes)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_dir is None:
        if args.config is None:
            print("error: give --config (or --run-dir with --resume)", file=sys.stderr)
            return 2
        args.run_dir = Path("runs") / args.config[-1].stem
    try:
        if args.reset_actor and not args.resume:
            print("error: --reset-actor goes with --resume", file=sys.stderr)
            return 2
        if args.resume:
            if not has_checkpoint(args.run_dir):
                print(f"error: --resume: no checkpoint in {args.run_dir}", file=sys.stderr)
                return 2
            cfg = load_config(args.run_dir / CONFIG_FILE, args.overrides)
        else:
            if args.config is None:
                print("error: --config is required for a new run", file=sys.stderr)
                return 2
            if has_checkpoint(args.run_dir):
                print(f"error: {args.run_dir} already holds a run; use --resume or another --run-dir",
                      file=sys.stderr)
                return 2
            cfg = load_config(args.config, args.overrides)
        cfg.env.name = args.env
        if args.env == "igibson":
            from training.igibson_env import require_igibson
            require_igibson()
    except (ConfigError, IGibsonMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Deliberate: the env processes simulate while the agent updates, and OpenMP threads that
    # share a core with them wait on each other (measured here: a tiny update 100x slower with 2
    # threads beside one busy process). So by default torch gets the cores the envs leave over.
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) - cfg.env.num_envs
    print(configure_cpu(args.threads))
    trainer = Trainer(cfg, args.run_dir, args.env, resume=args.resume, reset_actor=args.reset_actor)

    def request_stop(signum, frame):
        if trainer.stop_requested:   # a second signal: stop now
            raise KeyboardInterrupt
        trainer.stop_requested = True
        print(f"\nsignal {signum}: saving a checkpoint and stopping", file=sys.stderr, flush=True)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
