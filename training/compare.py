"""The paper's comparison table on the embedded simulator: train every row with one budget and
the same seeds, export each through ONNX, evaluate each bundle on the same episodes, write one table.

    python training/compare.py --base config/train/recore_pointnav.yaml \\
        --rows dreamer recore_depth recore_no_cl recore_no_aux --seeds 0 1 2 \\
        --set run.total_steps=12000 --episodes 100 --out runs/compare

A row is `config/train/<row>.yaml` merged over `--base` (the shipped model's sizes, budget and
recipe), so rows differ only in their representation. Each stage is skipped when its output
exists, and an interrupted training resumes, so rerunning the command continues the table.
Per row and training seed: `OUT/<row>/seed<k>/` (the training run), its `bundle/` and its
`eval_<split>/` (`training/evaluate.py`'s outputs); the table: `OUT/table.md` and `OUT/table.json`,
with the no-learning baseline and the privileged shortest-path expert on the same episodes beside
the rows, and success differences paired by seed and episode (each row against each `--against`
row, and each row out of distribution against its own `train`; every row, seed and split meets
the same layouts, starts and goals, so differences are taken episode by episode).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):   # run as `python training/compare.py`: import `training.` from the repo
    sys.path.insert(0, str(REPO))

from recore_nav.episodes import EpisodeRecord, bootstrap_interval, paired_success_differences, summarize  # noqa: E402
from recore_nav.task import SPLITS  # noqa: E402
from training.checkpoint import has_checkpoint  # noqa: E402
from training.config import load_config  # noqa: E402
from training.kernels.cpu_tuning import configure_cpu  # noqa: E402
from training.evaluate import REFERENCE_POLICIES, evaluate_policy, write_results  # noqa: E402
from training.evaluation.episodes import EvaluationSpec  # noqa: E402
from training.evaluation.report import difference_cell, interval_cell  # noqa: E402
from training.export_onnx import export_bundle  # noqa: E402
from training.run_log import CONFIG_FILE  # noqa: E402
from training.trainer import Trainer  # noqa: E402


def evaluation_spec(split: str, args: argparse.Namespace, videos: int = 1) -> EvaluationSpec:
    return EvaluationSpec(split=split, episodes=args.episodes, workers=args.workers, videos=videos)


def train_row(row: str, seed: int, args: argparse.Namespace) -> Path:
    """Train (or finish training) one row at one seed and export its bundle; the run directory."""
    run_dir = args.out / row / f"seed{seed}"
    if (run_dir / "bundle" / "policy.onnx").is_file():
        return run_dir
    overrides = [*args.overrides, f"run.seed={seed}"]
    resume = has_checkpoint(run_dir)     # finished runs return at once; interrupted ones go on
    cfg = (load_config(run_dir / CONFIG_FILE, overrides) if resume
           else load_config([args.base, REPO / "config" / "train" / f"{row}.yaml"], overrides))
    print(f"training {row} seed {seed} in {run_dir}" + (" (resumed)" if resume else ""), flush=True)
    Trainer(cfg, run_dir, "embedded", resume=resume).run()
    export_bundle(run_dir, run_dir / "bundle", name=row)
    return run_dir


def evaluate_run(row: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One trained run on every split: its training budget and each split's episodes."""
    result: dict[str, Any] = {"episodes": {}}
    bundle = run_dir / "bundle"
    for split in args.splits:
        out = run_dir / f"eval_{split}"
        if not (out / "summary.json").is_file():
            spec = evaluation_spec(split, args)
            write_results(out, bundle, spec, {row: evaluate_policy(bundle, spec, row)}, run_dir)
        summary = json.loads((out / "summary.json").read_text())
        result["training"] = summary["training"]
        result["episodes"][split] = [EpisodeRecord(**e) for e in summary["per_episode"][row]]
    return result


def row_results(runs: dict[int, dict[str, Any]], splits: tuple[str, ...]) -> dict[str, Any]:
    """A row over its training seeds: each split's metrics over the episodes of every seed pooled
    (so the intervals cover evaluation noise, not seed-to-seed spread), and each seed's success rate
    beside them (the spread between seeds)."""

    row: dict[str, Any] = {"training": next(iter(runs.values()))["training"], "seeds": list(runs), "splits": {}}
    for split in splits:
        pooled = [e for run in runs.values() for e in run["episodes"][split]]
        per_seed = [sum(e.success for e in run["episodes"][split]) / len(run["episodes"][split])
                    for run in runs.values()]
        row["splits"][split] = {**summarize(pooled), "per_seed_success": per_seed}
    return row


def paired_success_difference(a: dict[int, dict[str, Any]], split_a: str, b: dict[int, dict[str, Any]],
                              split_b: str) -> dict[str, Any] | None:
    """Success of runs `a` on `split_a` minus runs `b` on `split_b`, paired by training seed and
    evaluation episode (the same layouts, starts and goals): the mean difference, its 95%
    bootstrap interval over the pairs, and each seed's difference; None when nothing pairs."""

    differences, per_seed = [], []
    for seed in sorted(set(a) & set(b)):
        pairs = paired_success_differences(a[seed]["episodes"][split_a], b[seed]["episodes"][split_b])
        if pairs:
            differences += pairs
            per_seed.append(sum(pairs) / len(pairs))
    if not differences:
        return None
    values = np.asarray(differences)
    return {"value": float(values.mean()), "ci95": list(bootstrap_interval(values)), "per_seed": per_seed}


def reference_rows(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The no-learning baseline (the floor) and the privileged expert (the ceiling) on the same
    episodes as the rows; computed once, kept in OUT/references.json."""
    path = args.out / "references.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    for policy, reference in REFERENCE_POLICIES.items():
        for split in args.splits:
            if split in rows.get(reference.name, {}):
                continue
            result = evaluate_policy(policy, evaluation_spec(split, args, videos=0), policy)
            rows.setdefault(reference.name, {})[split] = summarize(result.episodes)
            path.write_text(json.dumps(rows, indent=2) + "\n")
    return {reference.name: {"training": {"steps": 0, "updates": 0}, "seeds": [],
                             "splits": {split: rows[reference.name][split] for split in args.splits}}
            for reference in REFERENCE_POLICIES.values()}


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def table_markdown(table: dict[str, dict[str, Any]], differences: dict[str, dict[str, Any]],
                   splits: tuple[str, ...], title: str) -> str:
    """The table (each row's episodes over its seeds pooled, each seed's success in parentheses),
    then success differences paired by seed and episode: each row against each reference row,
    and each row's out-of-distribution splits against its own `train`."""
    cell = interval_cell

    header = "| row | seeds | steps / updates | " + " | ".join(f"{s} success % | {s} SPL" for s in splits) + " |"
    lines = [f"### {title}", "", header, "|---|---|---|" + "---|---|" * len(splits)]
    for row, results in table.items():
        cells = []
        for split in splits:
            metrics = results["splits"][split]
            success = cell(metrics["success_rate"], True)
            if len(results["seeds"]) > 1:
                success += " (" + ", ".join(f"{100 * v:.0f}" for v in metrics["per_seed_success"]) + ")"
            cells.append(f"{success} | {cell(metrics['spl'])}")
        training = results["training"]
        budget = f"{training['steps']} / {training['updates']}" if training.get("steps") else "no training"
        seeds = ", ".join(map(str, results["seeds"])) or "-"
        lines.append(f"| {row} | {seeds} | {budget} | " + " | ".join(cells) + " |")
    lines += ["", "Success % over every seed's episodes with a 95% Wilson interval, each seed's success in "
              "parentheses; SPL with a 95% bootstrap interval of the mean."]

    def difference_table(heading: str, columns: list[str], rows: dict[str, dict[str, Any]]) -> None:
        if not rows:
            return
        lines.extend(["", f"#### {heading}", "", "| row | " + " | ".join(columns) + " |",
                      "|---|" + "---|" * len(columns)])
        for row, by_column in rows.items():
            cells = [difference_cell(d)
                     + (" (" + ", ".join(_points(v) for v in d["per_seed"]) + ")" if len(d["per_seed"]) > 1 else "")
                     for d in by_column.values()]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")

    references = [row for row in table if any(row in d.get("against", {}) for d in differences.values())]
    for reference in references:
        difference_table(f"Success minus {reference}'s, percentage points (paired by seed and episode; "
                         "each seed's in parentheses)", list(splits),
                         {row: d["against"][reference] for row, d in differences.items()
                          if reference in d.get("against", {})})
    shifted = [s for s in splits if s != "train"]
    difference_table("Out of distribution: success minus the same row's on train, percentage points "
                     "(paired by seed and episode)", [f"{s} - train" for s in shifted],
                     {row: d["shift"] for row, d in differences.items() if d.get("shift")})
    if differences:
        lines += ["", "Differences: mean with a 95% bootstrap interval over the episode pairs."]
    return "\n".join(lines) + "\n"


def differences_between(runs: dict[str, dict[int, dict[str, Any]]], splits: tuple[str, ...],
                        against: list[str]) -> dict[str, dict[str, Any]]:
    """Per row: `against` -> reference row -> split -> its success minus the reference's there;
    `shift` -> split -> its success on that split minus on train."""
    out: dict[str, dict[str, Any]] = {}
    for row, row_runs in runs.items():
        out[row] = {"against": {}}
        for reference in against:
            if reference in runs and reference != row:
                by_split = {s: paired_success_difference(row_runs, s, runs[reference], s) for s in splits}
                if all(by_split.values()):   # rows trained on no common seed are not compared
                    out[row]["against"][reference] = by_split
        if "train" in splits:
            out[row]["shift"] = {s: paired_success_difference(row_runs, s, row_runs, "train")
                                 for s in splits if s != "train"}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=REPO / "config" / "train" / "recore_pointnav.yaml")
    parser.add_argument("--rows", nargs="+", required=True, help="config/train/<row>.yaml names")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every row, e.g. run.total_steps=12000 (repeatable)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="training seeds: every row is trained once per seed (run.seed)")
    parser.add_argument("--row-seeds", nargs="+", default=[], metavar="ROW=SEED[,SEED]",
                        help="a row's own training seeds instead of --seeds (e.g. a costly ablation: "
                             "recore_seg=0,1)")
    parser.add_argument("--against", nargs="+", default=["dreamer"], metavar="ROW",
                        help="rows the others' success is compared with, paired by episode (those that are rows)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="evaluation processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each training run")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args(argv)
    row_seeds = {}
    for item in args.row_seeds:
        row, _, seeds = item.partition("=")
        try:
            row_seeds[row] = [int(seed) for seed in seeds.split(",")]
        except ValueError:
            parser.error(f"--row-seeds {item!r}: expected ROW=SEED[,SEED...], e.g. recore_seg=0,1")
        if row not in args.rows:
            parser.error(f"--row-seeds {item!r}: {row} is not one of --rows")
    args.row_seeds = row_seeds
    for row in args.rows:
        if not (REPO / "config" / "train" / f"{row}.yaml").is_file():
            parser.error(f"no recipe config/train/{row}.yaml")
    args.out = args.out.resolve()
    args.splits = tuple(args.splits)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(configure_cpu(args.threads))
    title = (f"Rows over {Path(args.base).name} ({', '.join(args.overrides) or 'as is'}), "
             f"{args.episodes} episodes a split (the same episodes for every row and seed)")

    runs: dict[str, dict[int, dict[str, Any]]] = {}
    table: dict[str, dict[str, Any]] = {}

    def write_table() -> None:
        differences = differences_between(runs, args.splits, args.against)
        (args.out / "table.json").write_text(json.dumps({"rows": table, "differences": differences}, indent=2) + "\n")
        (args.out / "table.md").write_text(table_markdown(table, differences, args.splits, title))

    for row in args.rows:
        for seed in args.row_seeds.get(row, args.seeds):
            runs.setdefault(row, {})[seed] = evaluate_run(row, train_row(row, seed, args), args)
            table[row] = row_results(runs[row], args.splits)
            write_table()   # after every run: a partial table is there while the next one trains
    table.update(reference_rows(args))
    write_table()
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
