"""Train a goal-reaching policy offline from a dataset: CRL, or WM-CRL (CRL fed by a world model
trained on all the data), as the recipe says.

    python training/train_offline.py --config config/train/<recipe>.yaml --dataset PATH [PATH ...] \\
        [--set key=value ...] [--run-dir runs/<recipe>] [--resume] [--threads N]

Datasets are OGBench-layout `.npz` files (`training/data/datasets.py`): made by
`python -m training.data.generate` or imported from rosbag2 recordings by
`python -m training.data.rosbag_import`. The loop is `training.offline.OfflineTrainer`; a run of
the embedded simulator's recipes exports to the usual policy bundle with
`python training/export_onnx.py RUN --out models/NAME`. SIGINT/SIGTERM save a checkpoint first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):   # run as `python training/train_offline.py`: import `training.` from the repo
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.checkpoint import has_checkpoint, stop_on_signals
from training.config import ConfigError, build_config, load_tree
from training.data.datasets import DatasetError, describe, load_datasets
from training.kernels.cpu_tuning import configure_cpu
from training.offline import OfflineConfig, OfflineTrainer, validate_offline
from training.run_log import CONFIG_FILE


def load_offline_config(paths, overrides) -> OfflineConfig:
    return validate_offline(build_config(OfflineConfig, load_tree(paths, overrides)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, action="append", help="config/train/<recipe>.yaml (repeat to merge)")
    parser.add_argument("--dataset", type=Path, nargs="+", required=True,
                        help="OGBench-layout .npz files (several are read as one dataset)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--run-dir", type=Path, help="default runs/<recipe>")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --run-dir")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all)")
    args = parser.parse_args(argv)
    if args.run_dir is None:
        if not args.config:
            parser.error("give --config (or --run-dir with --resume)")
        args.run_dir = Path("runs") / args.config[-1].stem
    try:
        if args.resume:
            if not has_checkpoint(args.run_dir):
                raise ConfigError(f"--resume: no checkpoint in {args.run_dir}")
            cfg = load_offline_config(args.run_dir / CONFIG_FILE, args.overrides)
        else:
            if not args.config:
                raise ConfigError("--config is required for a new run")
            if has_checkpoint(args.run_dir):
                raise ConfigError(f"{args.run_dir} already holds a run; use --resume or another --run-dir")
            cfg = load_offline_config(args.config, args.overrides)
        dataset = load_datasets(args.dataset)
    except (ConfigError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(configure_cpu(args.threads or len(os.sched_getaffinity(0))))
    print(describe(dataset))
    try:
        trainer = OfflineTrainer(cfg, dataset, args.run_dir, resume=args.resume)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    stop_on_signals(trainer)
    trainer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
