"""The policy bundle contract: `models/<name>/policy.onnx` + `policy.json`.

One home for the format, used by the runtime that loads bundles (`recore_nav.policy`) and by
the exporter that writes them (`training/export_onnx.py`). See docs/architecture.md.

The ONNX graph is one recurrent step:
  inputs   rgb uint8 [1,H,W,3], goal float32 [1,3], prev_action float32 [1,2], state float32 [1,S]
  outputs  action float32 [1,2] in [-1, 1], next_state float32 [1,S]
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recore_nav.task import ACTION_DIM, GOAL_DIM

SCHEMA_VERSION = 1
ONNX_FILE = "policy.onnx"
JSON_FILE = "policy.json"
INPUT_NAMES = ("rgb", "goal", "prev_action", "state")
# ONNX value names are unique in a graph, so the next state cannot also be called "state".
OUTPUT_NAMES = ("action", "next_state")


class BundleError(ValueError):
    """A policy bundle that cannot be used; the message is one line saying why."""


@dataclass
class BundleSpec:
    """What `policy.json` states about a bundle."""

    image_height: int
    image_width: int
    state_size: int
    max_linear_speed: float          # m/s that action[0] = 1 means
    max_angular_speed: float         # rad/s that action[1] = 1 means
    onnx_sha256: str = ""
    schema_version: int = SCHEMA_VERSION
    name: str = ""
    training: dict[str, Any] = field(default_factory=dict)    # method, steps, config, ...
    evaluation: dict[str, Any] = field(default_factory=dict)  # per split: success_rate, spl, ...

    def input_shapes(self) -> dict[str, list[int]]:
        return {
            "rgb": [1, self.image_height, self.image_width, 3],
            "goal": [1, GOAL_DIM],
            "prev_action": [1, ACTION_DIM],
            "state": [1, self.state_size],
        }

    def output_shapes(self) -> dict[str, list[int]]:
        return {"action": [1, ACTION_DIM], "next_state": [1, self.state_size]}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = self.input_shapes()
        data["outputs"] = self.output_shapes()
        return data


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle_json(bundle_dir: Path, spec: BundleSpec) -> Path:
    """Write `policy.json` for the `policy.onnx` already in `bundle_dir`, with its checksum."""
    bundle_dir = Path(bundle_dir)
    spec.onnx_sha256 = sha256_of(bundle_dir / ONNX_FILE)
    path = bundle_dir / JSON_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec.to_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_bundle_spec(bundle_dir: Path) -> BundleSpec:
    """Read and check `policy.json` and the checksum of `policy.onnx`; raise BundleError."""
    bundle_dir = Path(bundle_dir)
    json_path, onnx_path = bundle_dir / JSON_FILE, bundle_dir / ONNX_FILE
    for path in (json_path, onnx_path):
        if not path.is_file():
            raise BundleError(f"policy bundle {bundle_dir}: missing file {path.name}")
    try:
        data = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleError(f"policy bundle {bundle_dir}: unreadable {JSON_FILE}: {err}") from None
    if not isinstance(data, dict):
        raise BundleError(f"policy bundle {bundle_dir}: {JSON_FILE} is not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BundleError(f"policy bundle {bundle_dir}: schema version {version!r}, "
                          f"this runtime reads {SCHEMA_VERSION}")
    known = set(BundleSpec.__dataclass_fields__)
    try:
        spec = BundleSpec(**{k: v for k, v in data.items() if k in known})
    except TypeError as err:
        raise BundleError(f"policy bundle {bundle_dir}: {JSON_FILE} is incomplete: {err}") from None
    actual = sha256_of(onnx_path)
    if actual != spec.onnx_sha256:
        raise BundleError(f"policy bundle {bundle_dir}: {ONNX_FILE} sha256 {actual[:12]}... does not "
                          f"match {spec.onnx_sha256[:12]}... in {JSON_FILE}")
    return spec
