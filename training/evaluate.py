"""Evaluate a policy bundle the way the robot runs it: onnxruntime through `PolicyRuntime`.

    python training/evaluate.py models/recore_pointnav --env embedded --split ood --episodes 200 \\
        [--baseline] [--expert] [--run-dir runs/recore_depth] [--out DIR] [--workers 2] [--videos 2] [--record]

Episode i uses seed `--seed-base` + i (default `EVAL_SEED_BASE`, the seeds the training program
evaluates on), so two policies, the no-learning baseline of `--baseline` and the privileged
shortest-path expert of `--expert` (`training/evaluation/baselines.py`) meet the same scenes,
starts and goals. Reported per policy: success rate (95% Wilson interval), SPL, collisions per
episode, episode length and return (95% bootstrap intervals of the mean). Writes to `--out`
(default runs/eval/<bundle>_<env>_<split>): `summary.json`, `summary.md`, `success_vs_steps.png`
(from `--run-dir`'s metrics.jsonl) and `videos/`: a few successes and failures, the camera beside
the environment's top-down picture. Episodes run in `--workers` environment processes.
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

from recore_nav.episodes import summarize
from recore_nav.sim.factory import ENV_KINDS, check_env_available
from recore_nav.task import MAX_EPISODE_STEPS, SPLITS
from training.environments.collector import BatchPolicy, PerEnvPolicies
from training.evaluation.baselines import GoalSeekingBaseline, ShortestPathExpert
from training.evaluation.episodes import EVAL_SEED_BASE, Evaluation, EvaluationSpec, bundle_policy, evaluate
from training.evaluation.report import (evaluation_key, markdown_table, plot_success_vs_steps, record_in_bundle,
                                        write_video)

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
    summary: dict[str, Any] = {
        "bundle": str(bundle_dir), "name": name, **asdict(spec),
        "training": {k: v for k, v in bundle.training.items() if k != "config"},
        "results": rows, "videos": video_files, "plot": plotted,
        "per_episode": {label: [asdict(e) for e in result.episodes] for label, result in results.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"{name} on {spec.env} / {spec.split}, {spec.episodes} episodes (seeds {spec.seed_base}+)"
    table = markdown_table(rows, title)
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
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from recore_nav.bundle import read_bundle_spec
    try:
        bundle = read_bundle_spec(args.bundle)
        check_env_available(args.env)
    except Exception as err:   # BundleError, the iGibson install hint: one line each
        print(f"error: {err}", file=sys.stderr)
        return 2
    spec = EvaluationSpec(env=args.env, split=args.split, episodes=args.episodes, seed_base=args.seed_base,
                          max_steps=args.max_steps, image_size=bundle.image_height, workers=args.workers,
                          videos=args.videos)
    name = bundle.name or args.bundle.name
    out = args.out or Path("runs") / "eval" / f"{name}_{args.env}_{args.split}"
    policies: dict[str, str | Path] = {name: args.bundle}
    if args.baseline:
        policies[GoalSeekingBaseline.name] = "baseline"
    if args.expert:
        policies[ShortestPathExpert.name] = "expert"
    results = {label: evaluate_policy(policy, spec, policy_tag(label), args.providers)
               for label, policy in policies.items()}
    summary = write_results(out, args.bundle, spec, results, args.run_dir)
    rows = summary["results"]
    if args.record:
        record_in_bundle(args.bundle, evaluation_key(args.env, args.split),
                         {"source": "evaluate", "seed_base": args.seed_base, "max_steps": args.max_steps,
                          **rows[name], "baseline": rows.get(GoalSeekingBaseline.name)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
