"""The paper's comparison table on the embedded simulator: train every row with one budget and
seed, export each through ONNX, evaluate each bundle on the same episodes, write one table.

    python training/compare.py --base config/train/recore_pointnav.yaml \\
        --rows dreamer recore_depth recore_no_cl recore_no_aux --set run.total_steps=12000 \\
        --episodes 100 --out runs/compare

A row is `config/train/<row>.yaml` merged over `--base` (the shipped model's sizes, budget and
recipe), so rows differ only in their representation. Each stage is skipped when its output
exists, and an interrupted training resumes, so rerunning the command continues the table.
Per row: `OUT/<row>/` (the training run), `OUT/<row>/bundle/`, `OUT/<row>/eval_<split>/`
(`training/evaluate.py`'s outputs); the table: `OUT/table.md` and `OUT/table.json`, with the
no-learning baseline and the privileged shortest-path expert on the same episodes beside the rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):   # run as `python training/compare.py`: import `training.` from the repo
    sys.path.insert(0, str(REPO))
SPLITS = ("train", "ood", "sim2real")


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def train_row(row: str, args: argparse.Namespace) -> Path:
    run_dir = args.out / row
    trained = run_dir / "bundle" / "policy.onnx"
    if trained.is_file():
        return run_dir
    command = [sys.executable, "training/train_igibson.py", "--run-dir", str(run_dir),
               "--threads", str(args.threads)]
    if (run_dir / "checkpoint.pt").is_file():
        command += ["--resume"]          # finished runs return at once; interrupted ones go on
    else:
        command += ["--config", str(args.base), "--config", str(REPO / "config" / "train" / f"{row}.yaml")]
    for override in args.overrides:
        command += ["--set", override]
    run(command)
    run([sys.executable, "training/export_onnx.py", str(run_dir), "--out", str(run_dir / "bundle"), "--name", row])
    return run_dir


def evaluate_row(row: str, run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    results = {}
    for split in args.splits:
        out = run_dir / f"eval_{split}"
        if not (out / "summary.json").is_file():
            run([sys.executable, "training/evaluate.py", str(run_dir / "bundle"), "--split", split,
                 "--episodes", str(args.episodes), "--workers", str(args.workers), "--videos", "1",
                 "--out", str(out), "--run-dir", str(run_dir)])
        summary = json.loads((out / "summary.json").read_text())
        results[split] = {"training": summary["training"], **summary["results"][row]}
    return results


REFERENCES = {"baseline": "goal-seeking baseline", "expert": "shortest-path expert (privileged)"}


def reference_rows(bundle: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The no-learning baseline (the floor) and the privileged expert (the ceiling) on the same
    episodes as the rows; computed once, kept in OUT/references.json."""
    from recore_nav.bundle import read_bundle_spec
    from training.evaluate import evaluate_policy, parse_args as evaluate_args, summarize

    path = args.out / "references.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    for policy, name in REFERENCES.items():
        for split in args.splits:
            if split in rows.get(name, {}):
                continue
            options = evaluate_args([str(bundle), "--split", split, "--episodes", str(args.episodes),
                                     "--workers", str(args.workers), "--videos", "0"])
            episodes, _ = evaluate_policy(policy, options, read_bundle_spec(bundle).image_height)
            rows.setdefault(name, {})[split] = {"training": {"steps": 0, "updates": 0}, **summarize(episodes)}
            path.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def table_markdown(table: dict[str, dict[str, Any]], splits: tuple[str, ...], title: str) -> str:
    from training.evaluate import interval_cell as cell

    header = "| row | steps / updates | " + " | ".join(f"{s} success % | {s} SPL" for s in splits) + " |"
    lines = [f"### {title}", "", header, "|---|---|" + "---|---|" * len(splits)]
    for row, results in table.items():
        training = next(iter(results.values()))["training"]
        cells = [f"{cell(results[s]['success_rate'], True)} | {cell(results[s]['spl'], False)}" for s in splits]
        budget = f"{training['steps']} / {training['updates']}" if training.get("steps") else "no training"
        lines.append(f"| {row} | {budget} | " + " | ".join(cells) + " |")
    lines += ["", "Success with a 95% Wilson interval, SPL with a 95% bootstrap interval of the mean."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=REPO / "config" / "train" / "recore_pointnav.yaml")
    parser.add_argument("--rows", nargs="+", required=True, help="config/train/<row>.yaml names")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every row, e.g. run.total_steps=12000 (repeatable)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="evaluation processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each training run")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    args = parser.parse_args(argv)
    for row in args.rows:
        if not (REPO / "config" / "train" / f"{row}.yaml").is_file():
            parser.error(f"no recipe config/train/{row}.yaml")
    args.out = args.out.resolve()
    args.splits = tuple(args.splits)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    title = (f"Rows over {Path(args.base).name} ({', '.join(args.overrides) or 'as is'}), "
             f"{args.episodes} episodes a split (same seeds)")

    def write_table(table: dict[str, dict[str, Any]]) -> None:
        (args.out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
        (args.out / "table.md").write_text(table_markdown(table, args.splits, title))

    table = {}
    for row in args.rows:
        run_dir = train_row(row, args)
        table[row] = evaluate_row(row, run_dir, args)
        write_table(table)   # after every row: a partial table is there while the next row trains
    table.update(reference_rows(args.out / args.rows[0] / "bundle", args))
    write_table(table)
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
