"""What a training run directory holds beside its checkpoint: the recipe it ran (`config.yaml`)
and its log (`metrics.jsonl`, one JSON object a line, and TensorBoard scalars under `tb/`).

Both training programs (online and offline) keep their runs this way. A resumed run drops the
records written after the checkpoint it resumed from (they belong to the lost part of the run),
and TensorBoard purges its events after that step too.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"


def write_config(run_dir: Path, tree: dict[str, Any]) -> None:
    """The run's recipe, rewritten on resume too, so `--set` overrides given then carry on."""
    (Path(run_dir) / CONFIG_FILE).write_text(yaml.safe_dump(tree, sort_keys=False))


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


class MetricsLog:
    """Appends records to `metrics.jsonl` and their finite numbers to TensorBoard.

    A record has a `kind` ("train", "eval"); scalars go under their own group where the key has
    one (`model/loss`, `critic/...`), else under the kind (`train/...`, `eval_<split>/...` for an
    evaluation of a split or task)."""

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(run_dir) / METRICS_FILE
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        else:
            kept = [r for r in read_records(run_dir) if r["step"] <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        self.writer = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)

    def write(self, step: int, record: dict[str, Any]) -> None:
        record = {"step": step, "time": time.time(), **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        kind = record.get("kind", "train")
        where = record.get("split", record.get("task"))
        group = kind if where is None else f"{kind}_{where}"
        for key, value in record.items():
            if (key not in ("step", "time", "kind", "split", "task") and isinstance(value, (int, float))
                    and not isinstance(value, bool) and math.isfinite(value)):
                self.writer.add_scalar(key if "/" in key else f"{group}/{key}", value, step)

    def flush(self) -> None:
        self.writer.flush()
