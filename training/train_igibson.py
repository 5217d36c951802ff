"""Train a point-goal policy online, in any simulator behind the environment contract: the
embedded MuJoCo simulator by default, iGibson with `--env igibson` where it is installed (this
project's scenes, or iGibson's own Turtlebot and scenes with `--igibson-data DIR --igibson-scenes
Rs_int ...`: `training/environments/igibson_data.py`).

    python training/train_igibson.py --env embedded --config config/train/recore_depth.yaml \\
        [--config more.yaml ...] [--set run.total_steps=200000 ...] [--run-dir runs/recore_depth]
        [--resume [--reset-actor]] [--threads N] [--igibson-data DIR --igibson-scenes ID ...]

Every row of the paper's table is a recipe in `config/train/`; `--config` given twice merges
recipes left to right and `--set key=value` overrides any field. The loop itself is
`training.trainer.Trainer` (what the run directory holds is described there). `--resume`
continues the checkpoint in `--run-dir`; SIGINT/SIGTERM save a checkpoint before exiting. The
iGibson data options are the run's config (`env.igibson_data`, `env.igibson_scenes`), so a
resumed run keeps them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):   # run as `python training/train_igibson.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recore_nav.sim.factory import ENV_KINDS, check_env_available
from training.checkpoint import has_checkpoint, stop_on_signals
from training.config import ConfigError, load_config, validate
from training.environments import igibson_data
from training.kernels.cpu_tuning import configure_cpu
from training.run_log import CONFIG_FILE
from training.trainer import Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=ENV_KINDS, default=None,
                        help="the simulator (default: embedded; on --resume: the run's own)")
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
    igibson_data.add_arguments(parser)
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
        if args.resume and args.env not in (None, cfg.env.name):
            print(f"error: {args.run_dir} trains in {cfg.env.name}; --env {args.env} would change its simulator "
                  "mid-run (start a new run instead)", file=sys.stderr)
            return 2
        if not args.resume:
            cfg.env.name = args.env or "embedded"
        args.env = cfg.env.name
        data = igibson_data.env_kwargs_from_args(args)
        trained_on = (cfg.env.igibson_data, tuple(cfg.env.igibson_scenes))
        if args.resume and data and (data["igibson_data"], data["igibson_scenes"]) != trained_on:
            scenes = (f"{' '.join(cfg.env.igibson_scenes)} of {cfg.env.igibson_data}" if cfg.env.igibson_data
                      else "this project's scenes")
            print(f"error: {args.run_dir} trains on {scenes}; --igibson-data/--igibson-scenes would change "
                  "them mid-run (start a new run instead)", file=sys.stderr)
            return 2
        if data:
            cfg.env.igibson_data, cfg.env.igibson_scenes = data["igibson_data"], data["igibson_scenes"]
        check_env_available(cfg.env.name, **validate(cfg).env.env_kwargs())
    except (ConfigError, RuntimeError, ValueError) as err:   # a bad recipe, the iGibson install hint
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Deliberate: the env processes simulate while the agent updates, and OpenMP threads that
    # share a core with them wait on each other (measured here: a tiny update 100x slower with 2
    # threads beside one busy process). So by default torch gets the cores the envs leave over.
    if args.threads is None:
        args.threads = len(os.sched_getaffinity(0)) - cfg.env.num_envs
    print(configure_cpu(args.threads))
    trainer = Trainer(cfg, args.run_dir, cfg.env.name, resume=args.resume, reset_actor=args.reset_actor)

    stop_on_signals(trainer)
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
