"""Training configuration: a tree of dataclasses grouped by concern, loaded from YAML.

The tree is `TrainConfig`: `env` and `run` (here) and `agent` (the method's own configuration,
beside its code: `training.methods.recore.AgentConfig` with the world model's, representation's
and behaviour's in their modules).

Defaults are DreamerV2's published sizes (deterministic state 200, stochastic 32x32 discrete,
CNN depth 32, MLPs of 400 units, batch 16 x 50, imagination horizon 15). A recipe in
`config/train/<name>.yaml` overrides only what differs; several recipes merge left to right (a
table row over the shipped model's sizes and budget); `--set a.b=c` overrides win over all:

    cfg = load_config("config/train/recore_depth.yaml", overrides=["agent.batch_size=8"])
    cfg = load_config(["config/train/recore_pointnav.yaml", "config/train/dreamer.yaml"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from recore_nav.task import MAX_EPISODE_STEPS
from training.methods.recore import AgentConfig
from training.methods.world_model import AUX_TARGETS

T = TypeVar("T")

class ConfigError(ValueError):
    """A recipe or override that does not fit the configuration tree."""


@dataclass
class EnvConfig:
    name: str = "embedded"          # embedded (MuJoCo) or igibson
    image_size: int = 64
    num_envs: int = 4
    train_split: str = "train"
    eval_splits: tuple[str, ...] = ("train", "ood")
    max_episode_steps: int = MAX_EPISODE_STEPS
    igibson_data: str = ""          # igibson only: iGibson's own data directory ("": this project's scenes)
    igibson_scenes: tuple[str, ...] = ()   # with igibson_data: the scene ids episodes are drawn from

    def env_kwargs(self) -> dict[str, Any]:
        """The environment's own constructor arguments this config sets: iGibson's data and
        scenes (`training/environments/igibson_data.py`), else none."""
        if not self.igibson_data:
            return {}
        if self.name != "igibson":
            raise ConfigError(f"env.igibson_data goes with env.name igibson (--env igibson), not {self.name!r}")
        return {"igibson_data": self.igibson_data, "igibson_scenes": self.igibson_scenes}


@dataclass
class RunConfig:
    total_steps: int = 1_000_000    # environment steps, summed over environments
    prefill_steps: int = 5_000      # steps before the first update, driven by `prefill_policy`
    prefill_policy: str = "random"  # random (uniform actions) or expert (shortest-path expert + noise)
    expert_noise: float = 0.3       # action noise std of the expert prefill
    train_ratio: int = 512          # replayed steps per environment step (DreamerV3 convention)
    replay_capacity: int = 1_000_000
    eval_every: int = 50_000
    eval_episodes: int = 10
    checkpoint_every: int = 10_000
    log_every: int = 1_000
    seed: int = 0
    device: str = "cpu"


@dataclass
class TrainConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    run: RunConfig = field(default_factory=RunConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)


def validate(cfg: TrainConfig) -> TrainConfig:
    rep, wm = cfg.agent.representation, cfg.agent.world_model
    if rep.aux_target not in AUX_TARGETS:
        raise ConfigError(f"agent.representation.aux_target must be one of {AUX_TARGETS}, not {rep.aux_target!r}")
    if cfg.run.prefill_policy not in ("random", "expert"):
        raise ConfigError(f"run.prefill_policy must be random or expert, not {cfg.run.prefill_policy!r}")
    if cfg.agent.precision not in ("fp32", "bf16"):
        raise ConfigError(f"agent.precision must be fp32 or bf16, not {cfg.agent.precision!r}")
    if cfg.env.igibson_scenes and not cfg.env.igibson_data:
        raise ConfigError("env.igibson_scenes goes with env.igibson_data (iGibson's data directory)")
    if cfg.env.image_size % 16 or cfg.env.image_size < 32:
        raise ConfigError(f"env.image_size must be a multiple of 16 and at least 32, not {cfg.env.image_size}")
    if not (rep.contrastive or rep.reconstruct_rgb or rep.aux_target != "none"):
        raise ConfigError("the representation needs at least one of contrastive, reconstruct_rgb, aux_target")
    if wm.classes < 0 or wm.stoch <= 0 or wm.deter <= 0:
        raise ConfigError("agent.world_model needs stoch > 0, deter > 0 and classes >= 0")
    if cfg.agent.behavior.actor_modes < 1:
        raise ConfigError(f"agent.behavior.actor_modes must be at least 1, not {cfg.agent.behavior.actor_modes}")
    if cfg.agent.seq_len < 2 or cfg.agent.batch_size < 1:
        raise ConfigError("agent.seq_len must be at least 2 and agent.batch_size at least 1")
    return cfg


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """A dataclass from a nested dict, refusing unknown keys with their dotted path."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, not {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(f"unknown config key {path!r} (known: {', '.join(fields)})")
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            kwargs[key] = _build(type(default), value, path)
        elif isinstance(default, tuple):
            kwargs[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{path} must be true or false, not {value!r}")
            kwargs[key] = value
        elif isinstance(default, (int, float)):
            kwargs[key] = _number(type(default), value, path)
        else:
            kwargs[key] = str(value)
    return cls(**kwargs)


def _number(kind: type, value: Any, path: str) -> int | float:
    # YAML reads 1e6 as a string; accept it, refuse what is not a number.
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path} must be a number, not {value!r}") from None
    if kind is int:
        if number != int(number):
            raise ConfigError(f"{path} must be an integer, not {value!r}")
        return int(number)
    return number


def _set_dotted(tree: dict[str, Any], override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like a.b=value")
    key, raw = override.split("=", 1)
    parts = key.strip().split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` over `base`, section by section (a later recipe overrides only what it names)."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_tree(paths: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None,
              overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The plain tree of one YAML recipe, or of several merged left to right (None: empty),
    with `a.b=value` overrides applied last."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [paths]
    tree: dict[str, Any] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping at the top level")
        tree = _merge(tree, loaded)
    for override in overrides:
        _set_dotted(tree, override)
    return tree


def build_config(cls: type[T], tree: dict[str, Any]) -> T:
    """A config dataclass tree of `cls` from a plain tree, refusing unknown keys by their path."""
    return _build(cls, tree, "")


def load_config(paths: str | Path | list[str | Path] | tuple[str | Path, ...] | None = None,
                overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """The TrainConfig of the online trainer from recipes and overrides (see `load_tree`)."""
    return validate(build_config(TrainConfig, load_tree(paths, overrides)))


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (YAML/JSON-ready) of a config dataclass; tuples become lists."""
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(dataclasses.asdict(cfg))


def config_from_dict(tree: dict[str, Any]) -> TrainConfig:
    """Inverse of config_to_dict (for checkpoints and policy bundles)."""
    return validate(_build(TrainConfig, tree, ""))
