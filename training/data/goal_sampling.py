"""Which states, goals and sequences an offline goal-conditioned learner trains on.

OGBench's goal-conditioned sampling (`impls/utils/datasets.py`, GCDataset), written for this
project: states are drawn uniformly among the dataset's valid steps (every step but a
trajectory's last); a goal for a state is, with the given probabilities, the state itself, a
future state of the same trajectory (its offset geometric with parameter 1 - discount, or
uniform over the rest of the trajectory) or a random state of the dataset. `terminals` and
`valids` are the arrays as OGBench's loader leaves them (`training.data.datasets`).

The sampler deals in indices; the learner gathers what it needs at them (state vectors, images,
poses), so one sampler serves state-based and image-based datasets alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GoalSamplingConfig:
    """OGBench's GCDataset probabilities; the defaults are CRL's."""

    discount: float = 0.99
    value_p_curgoal: float = 0.0
    value_p_trajgoal: float = 1.0
    value_p_randomgoal: float = 0.0
    value_geom_sample: bool = True
    actor_p_curgoal: float = 0.0
    actor_p_trajgoal: float = 1.0
    actor_p_randomgoal: float = 0.0
    actor_geom_sample: bool = False

    def __post_init__(self) -> None:
        for prefix in ("value", "actor"):
            total = sum(getattr(self, f"{prefix}_p_{kind}") for kind in ("curgoal", "trajgoal", "randomgoal"))
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"{prefix} goal probabilities must sum to 1, got {total}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount must be in (0, 1), got {self.discount}")


@dataclass
class GoalBatch:
    """Indices into the dataset: states, their next steps, and the critic's and actor's goals."""

    states: np.ndarray
    next_states: np.ndarray
    value_goals: np.ndarray
    actor_goals: np.ndarray


class GoalSampler:
    """States and goals from a dataset's `terminals` and `valids` (OGBench's loader's arrays)."""

    def __init__(self, terminals: np.ndarray, valids: np.ndarray, config: GoalSamplingConfig,
                 trajectory_ends: np.ndarray | None = None):
        """`trajectory_ends`: each trajectory's last step, for sequences (default: the terminals)."""
        self.config = config
        (self.valid_indices,) = np.nonzero(np.asarray(valids) > 0)
        (self.terminal_indices,) = np.nonzero(np.asarray(terminals) > 0)
        if len(self.valid_indices) == 0 or len(self.terminal_indices) == 0:
            raise ValueError("the dataset has no valid step or no terminal")
        if self.terminal_indices[-1] < self.valid_indices[-1]:
            raise ValueError("the dataset's last trajectory has no terminal")
        self.trajectory_ends = self.terminal_indices if trajectory_ends is None else np.asarray(trajectory_ends)

    def final_indices(self, indices: np.ndarray) -> np.ndarray:
        """The last goal-able step of each index's trajectory (its first terminal at or after it)."""
        return self.terminal_indices[np.searchsorted(self.terminal_indices, indices)]

    def random_states(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return self.valid_indices[rng.integers(0, len(self.valid_indices), count)]

    def goals(self, indices: np.ndarray, p_curgoal: float, p_trajgoal: float, geometric: bool,
              rng: np.random.Generator) -> np.ndarray:
        """A goal index for each state index (see the module docstring)."""
        n = len(indices)
        final = self.final_indices(indices)
        if geometric:
            offsets = rng.geometric(1.0 - self.config.discount, n)            # 1, 2, ...
            trajectory = np.minimum(indices + offsets, final)
        else:   # uniform over (index, final], the final state included
            u = rng.random(n)
            trajectory = np.round(np.minimum(indices + 1, final) * u + final * (1.0 - u)).astype(np.int64)
        if p_curgoal >= 1.0:
            return indices.copy()
        goals = np.where(rng.random(n) < p_trajgoal / (1.0 - p_curgoal), trajectory, self.random_states(n, rng))
        return np.where(rng.random(n) < p_curgoal, indices, goals)

    def sample(self, batch_size: int, rng: np.random.Generator) -> GoalBatch:
        c = self.config
        states = self.random_states(batch_size, rng)
        return GoalBatch(
            states=states, next_states=np.minimum(states + 1, self.final_indices(states)),
            value_goals=self.goals(states, c.value_p_curgoal, c.value_p_trajgoal, c.value_geom_sample, rng),
            actor_goals=self.goals(states, c.actor_p_curgoal, c.actor_p_trajgoal, c.actor_geom_sample, rng))

    def sequences(self, batch_size: int, horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Start states and their next `horizon` steps: indices [B, horizon + 1] (clamped at the
        trajectory's end) and a mask [B, horizon] of the transitions that stay in the trajectory."""
        starts = self.random_states(batch_size, rng)
        steps = starts[:, None] + np.arange(horizon + 1)[None]
        final = self.trajectory_ends[np.searchsorted(self.trajectory_ends, starts)][:, None]
        return np.minimum(steps, final), steps[:, 1:] <= final
