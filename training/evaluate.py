"""Evaluate a policy bundle the way the robot runs it: onnxruntime through `PolicyRuntime`.

    python training/evaluate.py models/recore_pointnav --env embedded --split ood --episodes 200 \\
        [--baseline] [--expert] [--run-dir runs/recore_depth] [--out DIR] [--workers 2] [--videos 2] [--record] \\
        [--node-params config/robot.yaml [--node-param collision_monitor=false ...]] \\
        [--latency 0.05 0.1] [--base-accel 1.0 3.0]

Episode i uses seed `--seed-base` + i (default `EVAL_SEED_BASE`, the seeds the training program
evaluates on), so two policies, the no-learning baseline of `--baseline` and the privileged
shortest-path expert of `--expert` (`training/evaluation/baselines.py`) meet the same scenes,
starts and goals. Reported per policy: success rate (95% Wilson interval), SPL, collisions per
episode, episode length and return (95% bootstrap intervals of the mean). Writes to `--out`
(default runs/eval/<bundle>_<env>_<split>): `summary.json`, `summary.md`, `success_vs_steps.png`
(from `--run-dir`'s metrics.jsonl) and `videos/`: a few successes and failures, the camera beside
the environment's top-down picture. Episodes run in `--workers` environment processes.

As on a robot: `--node-params FILE` runs the bundle through the navigation node's own controller
and collision monitor (`training/evaluation/node_policy.py`) with the node's parameters from FILE
(`--node-param NAME=VALUE` overrides one), and `summary.json` counts the control steps by status
(`navigating`, `slowed: obstacle`, ...). `--latency LOW HIGH` (s, drawn per episode) and
`--base-accel LINEAR ANGULAR` (m/s^2, rad/s^2) put a real base's dynamics between the commands
and the simulator (`recore_nav/sim/dynamics.py`).

`--env igibson --igibson-data DIR --igibson-scenes Rs_int ...` evaluates in iGibson's own scenes
with its Turtlebot (`training/environments/igibson_data.py`); the results are then called
`igibson-Rs_int+...` (output directory, `--record` key), apart from those in this project's scenes.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):   # run as `python training/evaluate.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recore_nav.episodes import paired_success_difference, summarize
from recore_nav.sim.dynamics import BaseDynamics
from recore_nav.sim.factory import ENV_KINDS, check_env_available
from recore_nav.task import MAX_EPISODE_STEPS, SPLITS
from training.environments import igibson_data
from training.environments.collector import BatchPolicy, PerEnvPolicies
from training.evaluation.baselines import GoalSeekingBaseline, ShortestPathExpert
from training.evaluation.episodes import EVAL_SEED_BASE, Evaluation, EvaluationSpec, bundle_policy, evaluate
from training.evaluation.node_policy import NodePolicies, node_parameters
from training.evaluation.report import (environment_label, evaluation_key, markdown_table, plot_success_vs_steps,
                                        record_in_bundle, write_video)

REFERENCE_POLICIES = {"baseline": GoalSeekingBaseline, "expert": ShortestPathExpert}


def policy_tag(label: str) -> str:
    """The short name of a result row in progress bars and video files: baseline, expert or policy."""
    return next((tag for tag, reference in REFERENCE_POLICIES.items() if reference.name == label), "policy")


def evaluate_policy(policy: str | Path, spec: EvaluationSpec, label: str = "", providers: str = "cpu") -> Evaluation:
    """Every episode of `spec` with `policy`: a bundle directory (run by onnxruntime with
    `providers`), "baseline" or "expert"."""
    if policy in REFERENCE_POLICIES:
        reference = REFERENCE_POLICIES[str(policy)]

        def make(num_envs: int) -> BatchPolicy:
            return PerEnvPolicies([reference() for _ in range(num_envs)])
        return evaluate(make, spec, label)
    return evaluate(bundle_policy(Path(policy), providers), spec, label)


def write_results(out: Path, bundle_dir: Path, spec: EvaluationSpec, results: dict[str, Evaluation],
                  run_dir: Path | None = None) -> dict[str, Any]:
    """`summary.json`, `summary.md`, videos and (from `run_dir`'s metrics) the success-vs-steps
    plot of a bundle's evaluation beside the reference policies'; returns the summary."""
    from recore_nav.bundle import read_bundle_spec

    bundle = read_bundle_spec(bundle_dir)
    name = bundle.name or Path(bundle_dir).name
    (out / "videos").mkdir(parents=True, exist_ok=True)
    video_files = []
    for label, result in results.items():
        tag = policy_tag(label)
        for episode, frames in result.videos:
            outcome = "success" if episode.success else "failure"
            video_files.append(str(write_video(frames, out / "videos" / f"{tag}_{outcome}_seed{episode.seed}")))
    plotted = None
    if run_dir is not None and (run_dir / "metrics.jsonl").is_file():
        if plot_success_vs_steps(run_dir / "metrics.jsonl", out / "success_vs_steps.png"):
            plotted = str(out / "success_vs_steps.png")
    rows = {label: summarize(result.episodes) for label, result in results.items()}
    # The bundle against each reference policy on the same episodes: a paired difference, tighter
    # than comparing the two rows' intervals.
    differences = {label: paired_success_difference(results[name].episodes, result.episodes)
                   for label, result in results.items() if label != name and name in results}
    summary: dict[str, Any] = {
        "bundle": str(bundle_dir), "name": name, **asdict(spec),
        "training": {k: v for k, v in bundle.training.items() if k != "config"},
        "results": rows, "success_difference": differences, "videos": video_files, "plot": plotted,
        "per_episode": {label: [asdict(e) for e in result.episodes] for label, result in results.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    env_label = environment_label(spec.env, spec.env_kwargs.get("igibson_scenes", ()))
    title = f"{name} on {env_label} / {spec.split}, {spec.episodes} episodes (seeds {spec.seed_base}+)"
    table = markdown_table(rows, title, {k: d for k, d in differences.items() if d is not None})
    (out / "summary.md").write_text(table)
    print(table)
    print(f"wrote {out}/summary.json, summary.md" + (", success_vs_steps.png" if plotted else "")
          + f" and {len(video_files)} videos")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="policy bundle directory (policy.onnx + policy.json)")
    parser.add_argument("--env", choices=ENV_KINDS, default="embedded")
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--baseline", action="store_true", help="also run the no-learning baseline")
    parser.add_argument("--expert", action="store_true",
                        help="also run the privileged shortest-path expert (the ceiling; embedded simulator only)")
    parser.add_argument("--run-dir", type=Path, help="training run whose metrics.jsonl to plot")
    parser.add_argument("--out", type=Path, help="output directory (default runs/eval/<bundle>_<env>_<split>)")
    parser.add_argument("--seed-base", type=int, default=EVAL_SEED_BASE)
    parser.add_argument("--max-steps", type=int, default=MAX_EPISODE_STEPS)
    parser.add_argument("--workers", type=int, default=2, help="environment processes")
    parser.add_argument("--videos", type=int, default=2, help="videos of successes and of failures, each")
    parser.add_argument("--record", action="store_true",
                        help="store this evaluation in the bundle's policy.json (evaluation.<env>/<split>)")
    parser.add_argument("--providers", default="cpu", help="onnxruntime providers (cpu, auto, cuda, tensorrt)")
    parser.add_argument("--node-params", type=Path,
                        help="run the bundle through the navigation node's controller and collision monitor with "
                             "this parameter file's navigation_node parameters (config/sim.yaml, config/robot.yaml)")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one navigation node parameter (with --node-params; repeatable)")
    parser.add_argument("--latency", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="command latency of the simulated base, s, drawn per episode from [LOW, HIGH]")
    parser.add_argument("--base-accel", type=float, nargs=2, metavar=("LINEAR", "ANGULAR"),
                        help="acceleration limits of the simulated base, m/s^2 and rad/s^2, both ways")
    igibson_data.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    if args.node_param and args.node_params is None:
        parser.error("--node-param needs --node-params")
    return args


def base_dynamics(args: argparse.Namespace) -> BaseDynamics | None:
    """The simulated base's dynamics the arguments ask for, or None for the simulator's own."""
    if args.latency is None and args.base_accel is None:
        return None
    linear, angular = args.base_accel if args.base_accel is not None else (None, None)
    return BaseDynamics(latency=tuple(args.latency or (0.0, 0.0)), max_linear_accel=linear, max_angular_accel=angular)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from recore_nav.bundle import read_bundle_spec
    try:
        bundle = read_bundle_spec(args.bundle)
        env_kwargs = igibson_data.env_kwargs_from_args(args)
        check_env_available(args.env, **env_kwargs)
        node = (NodePolicies(args.bundle, node_parameters(args.node_params, args.node_param), args.providers)
                if args.node_params is not None else None)
        dynamics = base_dynamics(args)
    except Exception as err:   # BundleError, the iGibson install hint or data, bad parameters: one line each
        print(f"error: {err}", file=sys.stderr)
        return 2
    spec = EvaluationSpec(env=args.env, split=args.split, episodes=args.episodes, seed_base=args.seed_base,
                          max_steps=args.max_steps, image_size=bundle.image_height, workers=args.workers,
                          videos=args.videos, dynamics=dynamics, env_kwargs=env_kwargs)
    name = bundle.name or args.bundle.name
    env_label = environment_label(args.env, env_kwargs.get("igibson_scenes", ()))
    out = args.out or Path("runs") / "eval" / f"{name}_{env_label}_{args.split}"
    policies: dict[str, str | Path] = {name: args.bundle}
    if args.baseline:
        policies[GoalSeekingBaseline.name] = "baseline"
    if args.expert:
        policies[ShortestPathExpert.name] = "expert"
    results = {label: (evaluate(node, spec, policy_tag(label)) if node is not None and policy == args.bundle
                       else evaluate_policy(policy, spec, policy_tag(label), args.providers))
               for label, policy in policies.items()}
    summary = write_results(out, args.bundle, spec, results, args.run_dir)
    if node is not None:
        summary["navigation_node"] = {"parameters_file": str(args.node_params), "overrides": args.node_param,
                                      "parameters": node.parameters, "status_steps": node.status_steps()}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print("control steps by status: " + ", ".join(f"{k} {v}" for k, v in node.status_steps().items()))
    rows = summary["results"]
    if args.record:
        record_in_bundle(args.bundle, evaluation_key(env_label, args.split),
                         {"source": "evaluate", "seed_base": args.seed_base, "max_steps": args.max_steps,
                          **rows[name], "baseline": rows.get(GoalSeekingBaseline.name)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
