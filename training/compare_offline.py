"""The offline table: CRL against WM-CRL on the same datasets, with the same budget and seeds,
each run evaluated on the same episodes; one table with 95% intervals and paired differences.

    python training/compare_offline.py --settings pointmaze-medium-navigate pointmaze-medium-stitch \\
        --rows crl wm_crl --seeds 0 1 2 --set run.steps=2000 --parallel 2 --out runs/offline

A setting is a dataset and its evaluation (`SETTINGS`: OGBench's five tasks for pointmaze, the
embedded simulator's fixed episodes per split for its datasets); a row is a recipe,
`config/train/<row>_<pointmaze|embedded>.yaml`, with every `--set` applied to every run (the
budget). Runs are subprocesses of `training/train_offline.py` (`--parallel` at a time, one torch
thread each), skipped when finished and resumed when interrupted, so rerunning the command
continues the table. Per setting, row and seed: `OUT/<setting>/<row>/seed<k>/`; the table:
`OUT/table.md` and `OUT/table.json`: success over every seed's episodes pooled (95% Wilson
interval) with each seed's success, and WM-CRL minus CRL paired by seed and episode.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):   # run as `python training/compare_offline.py`: import `training.` from the repo
    sys.path.insert(0, str(REPO))

from recore_nav.episodes import EpisodeRecord  # noqa: E402
from training.checkpoint import has_checkpoint  # noqa: E402
from training.compare import paired_success_difference, row_results  # noqa: E402
from training.evaluation.report import difference_cell, interval_cell  # noqa: E402
from training.offline import EVAL_EPISODES_FILE  # noqa: E402
from training.run_log import CONFIG_FILE  # noqa: E402


@dataclass(frozen=True)
class Setting:
    dataset: str          # data/<dataset>.npz, made by `python -m training.data.generate <dataset>`
    family: str           # pointmaze or embedded: which recipes apply
    eval_env: str         # an OGBench environment, or embedded


SETTINGS = {
    "pointmaze-medium-navigate": Setting("pointmaze-medium-navigate", "pointmaze", "pointmaze-medium-navigate-v0"),
    "pointmaze-medium-stitch": Setting("pointmaze-medium-stitch", "pointmaze", "pointmaze-medium-stitch-v0"),
    "pointmaze-large-stitch": Setting("pointmaze-large-stitch", "pointmaze", "pointmaze-large-stitch-v0"),
    "pointmaze-medium-explore": Setting("pointmaze-medium-explore", "pointmaze", "pointmaze-medium-navigate-v0"),
    "embedded-stitch": Setting("embedded-stitch", "embedded", "embedded"),
    "embedded-explore": Setting("embedded-explore", "embedded", "embedded"),
}
# OGBench's published CRL success (state-based, 1M updates at batch 1024, 8 seeds), where it has one.
OGBENCH_CRL = {"pointmaze-medium-navigate": "29 ± 7", "pointmaze-medium-stitch": "0 ± 1",
               "pointmaze-large-stitch": "0 ± 0"}


def run_command(setting: Setting, row: str, seed: int, run_dir: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(REPO / "training" / "train_offline.py"), "--dataset",
               str(args.data / f"{setting.dataset}.npz"), "--run-dir", str(run_dir), "--threads", "1"]
    if has_checkpoint(run_dir):
        command += ["--resume"]
    else:
        command += ["--config", str(REPO / "config" / "train" / f"{row}_{setting.family}.yaml")]
    overrides = [*args.overrides, f"run.seed={seed}", f"run.eval_env={setting.eval_env}"]
    return command + [a for item in overrides for a in ("--set", item)]


def finished(run_dir: Path) -> bool:
    """Whether the run reached its own `run.steps` and evaluated there."""
    path, config = run_dir / EVAL_EPISODES_FILE, run_dir / CONFIG_FILE
    if not (path.is_file() and config.is_file()):
        return False
    return json.loads(path.read_text())["step"] >= int(yaml.safe_load(config.read_text())["run"]["steps"])


def train_all(jobs: list[tuple[Setting, str, int, Path]], args: argparse.Namespace) -> None:
    """Every unfinished run, `--parallel` at a time; logs in each run directory."""
    pending = [job for job in jobs if not finished(job[3])]
    running: list[tuple[subprocess.Popen, Path]] = []
    while pending or running:
        while pending and len(running) < args.parallel:
            setting, row, seed, run_dir = pending.pop(0)
            run_dir.mkdir(parents=True, exist_ok=True)
            print(f"start {setting.dataset} {row} seed {seed}", flush=True)
            log = open(run_dir / "train.log", "a")
            running.append((subprocess.Popen(run_command(setting, row, seed, run_dir, args), stdout=log,
                                             stderr=subprocess.STDOUT, cwd=REPO), run_dir))
        time.sleep(2)
        for process, run_dir in list(running):
            if process.poll() is not None:
                running.remove((process, run_dir))
                print(f"done {run_dir.relative_to(args.out)} (exit {process.returncode})", flush=True)


def run_episodes(run_dir: Path) -> list[EpisodeRecord]:
    """Every episode of a run's final evaluation, tasks (or splits) in order, each numbered by its
    place in that order: splits share reset seeds, and runs are paired episode by episode."""
    data = json.loads((run_dir / EVAL_EPISODES_FILE).read_text())
    records = [EpisodeRecord(**e) for episodes in data["episodes"].values() for e in episodes]
    return [replace(record, seed=i) for i, record in enumerate(records)]


def table_markdown(table: dict[str, dict[str, Any]], differences: dict[str, Any], title: str) -> str:
    rows = sorted({row for by_row in table.values() for row in by_row})
    lines = [f"### {title}", "", "| setting | " + " | ".join(f"{row} success %" for row in rows)
             + " | WM-CRL - CRL, points | OGBench CRL (1M updates, 8 seeds) |",
             "|---|" + "---|" * (len(rows) + 2)]
    for setting, by_row in table.items():
        cells = []
        for row in rows:
            if row not in by_row:
                cells.append("-")
                continue
            metrics = by_row[row]["splits"]["all"]
            cells.append(interval_cell(metrics["success_rate"], True) + " ("
                         + ", ".join(f"{100 * v:.0f}" for v in metrics["per_seed_success"]) + ")")
        d = differences.get(setting)
        diff = difference_cell(d) if d else "-"
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {diff} | {OGBENCH_CRL.get(setting, '-')} |")
    lines += ["", "Success over every seed's evaluation episodes pooled, with a 95% Wilson interval and each "
              "seed's success in parentheses; the difference is paired by seed and episode, with a 95% "
              "bootstrap interval."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--rows", nargs="+", default=["crl", "wm_crl"], help="recipe stems: <row>_<family>.yaml")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="for every run: the budget and sizes, e.g. run.steps=2000 agent.batch_size=256")
    parser.add_argument("--data", type=Path, default=REPO / "data", help="where the datasets are")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (one torch thread each)")
    parser.add_argument("--out", type=Path, default=Path("runs/offline"))
    parser.add_argument("--table-only", action="store_true",
                        help="train nothing: tabulate the finished runs (a setting's missing seeds are left out)")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    for name in args.settings:
        if not (args.data / f"{SETTINGS[name].dataset}.npz").is_file():
            parser.error(f"no dataset {args.data / SETTINGS[name].dataset}.npz: "
                         f"python -m training.data.generate {SETTINGS[name].dataset} --out ...")
        for row in args.rows:
            if not (REPO / "config" / "train" / f"{row}_{SETTINGS[name].family}.yaml").is_file():
                parser.error(f"no recipe config/train/{row}_{SETTINGS[name].family}.yaml")
    jobs = [(SETTINGS[name], row, seed, args.out / name / row / f"seed{seed}")
            for name in args.settings for seed in args.seeds for row in args.rows]
    if not args.table_only:
        train_all(jobs, args)

    table: dict[str, dict[str, Any]] = {}
    differences: dict[str, Any] = {}
    for name in args.settings:
        runs = {row: {seed: {"training": {}, "episodes": {"all": run_episodes(args.out / name / row / f"seed{seed}")}}
                      for seed in args.seeds if finished(args.out / name / row / f"seed{seed}")}
                for row in args.rows}
        table[name] = {row: row_results(row_runs, ("all",)) for row, row_runs in runs.items() if row_runs}
        if {"crl", "wm_crl"} <= set(table[name]):
            differences[name] = paired_success_difference(runs["wm_crl"], "all", runs["crl"], "all")
    title = (f"CRL and WM-CRL offline, seeds {', '.join(map(str, args.seeds))}, "
             f"{' '.join(args.overrides) or 'recipe defaults'}")
    (args.out / "table.json").write_text(json.dumps({"rows": table, "differences": differences,
                                                     "overrides": args.overrides}, indent=2) + "\n")
    (args.out / "table.md").write_text(table_markdown(table, differences, title))
    print((args.out / "table.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
