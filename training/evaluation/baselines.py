"""A policy that needs no learning, so every learned number has a floor beside it.

`GoalSeekingBaseline` drives straight at the goal and, when its bumper reports a contact, backs
off and turns away for a moment before seeking the goal again. It sees only what a real robot
with a bumper would: the goal in the robot frame and the collision flag of the last step. It has
the same `reset()` / `act(obs, info)` surface as the learned policy in `training/evaluate.py`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class GoalSeekingBaseline:
    """Turn toward the goal, drive when facing it; on a bump, reverse, turn, and drive on."""

    name = "goal-seeking baseline"

    def __init__(self, turn_gain: float = 1.5, reverse_steps: int = 3, turn_steps: int = 6,
                 forward_steps: int = 8, facing_threshold: float = 0.5):
        self.turn_gain = turn_gain                  # angular action per radian of bearing
        self.facing_threshold = facing_threshold    # rad: drive only when the goal is within this
        # The escape manoeuvre after a bump, as (linear, angular-sign, steps) phases.
        self.escape_plan = [(-0.5, 0.0, reverse_steps), (0.0, 1.0, turn_steps), (1.0, 0.0, forward_steps)]
        self.reset()

    def reset(self) -> None:
        self._escape: list[tuple[float, float]] = []   # (linear, angular) actions still to run
        self._turn_sign = 1.0

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        """Action (2,) in [-1, 1] from the observation and the previous step's info."""
        distance, cos_bearing, sin_bearing = (float(v) for v in obs["goal"])
        bearing = math.atan2(sin_bearing, cos_bearing)
        if info.get("collision", False):
            # Turn away from the side the goal is on: the obstacle is most likely between us.
            self._turn_sign = -1.0 if bearing > 0 else 1.0
            self._escape = [(linear, sign * self._turn_sign)
                            for linear, sign, steps in self.escape_plan for _ in range(steps)]
        if self._escape:
            linear, angular = self._escape.pop(0)
            return np.array([linear, angular], dtype=np.float32)
        angular = float(np.clip(self.turn_gain * bearing, -1.0, 1.0))
        facing = abs(bearing) < self.facing_threshold
        # Slow down near the goal so it is not overshot (success radius 0.36 m, 0.05 m a step at full speed).
        linear = float(np.clip(distance / 0.5, 0.2, 1.0)) * max(0.0, cos_bearing) if facing else 0.0
        return np.array([linear, angular], dtype=np.float32)


class ShortestPathExpert:
    """The simulator's privileged expert (`PointNavEnv.oracle_action`, reported as
    `info["expert_action"]`): it follows the geodesic shortest path, which no robot knows. It is
    the ceiling of the table and the teacher of the imitation term (`behavior.bc_scale`)."""

    name = "shortest-path expert (privileged)"

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray], info: dict[str, Any]) -> np.ndarray:
        if "expert_action" not in info:
            raise RuntimeError("this environment reports no expert_action (only the embedded simulator does)")
        return np.asarray(info["expert_action"], np.float32)
