"""A real base's dynamics between the action and the simulator: command latency and acceleration limits.

The simulated base reaches a commanded velocity within one control step and acts on a command
the moment it is given; a real base does neither. `BaseDynamicsWrapper` sits between the policy
and the environment: a command takes effect `latency` seconds after it is given (drawn once per
episode), and the base's velocity moves toward the command in effect by at most the acceleration
limits, slowing down as well as speeding up. Over each control step it follows that velocity
profile at the physics' resolution and hands the environment the mean velocity of the step (the
same displacement to first order), so the environment itself is unchanged.

    env = make_env("embedded", dynamics=BaseDynamics(latency=(0.05, 0.1), max_linear_accel=1.0))
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from recore_nav.task import ACTION_DIM

# The velocity profile within a control step is followed at this many points (the embedded
# simulator's physics substeps at 10 Hz control).
PROFILE_POINTS = 10


@dataclass(frozen=True)
class BaseDynamics:
    """Latency in s, drawn uniformly from [low, high] per episode; accelerations in m/s^2 and
    rad/s^2, both ways (None: no limit)."""

    latency: tuple[float, float] = (0.0, 0.0)
    max_linear_accel: float | None = None
    max_angular_accel: float | None = None

    def __post_init__(self) -> None:
        low, high = self.latency
        if not 0.0 <= low <= high:
            raise ValueError(f"latency must be an interval 0 <= low <= high, got {self.latency}")
        for limit in (self.max_linear_accel, self.max_angular_accel):
            if limit is not None and not limit > 0.0:
                raise ValueError(f"acceleration limits must be > 0 or None, got {limit}")


class BaseDynamicsWrapper(gym.Wrapper):
    """The environment seen through a base with `BaseDynamics` (see the module docstring).

    `info["command_latency"]` is the episode's latency. A non-finite action passes through
    unchanged (the environment rejects it and counts it) and the base stops.
    """

    def __init__(self, env: gym.Env, dynamics: BaseDynamics) -> None:
        super().__init__(env)
        self.dynamics = dynamics
        base = env.unwrapped
        self._max_speed = np.array([base.max_linear_speed, base.max_angular_speed], dtype=np.float64)
        accel = (dynamics.max_linear_accel, dynamics.max_angular_accel)
        self._max_accel = np.array([math.inf if a is None else a for a in accel], dtype=np.float64)
        self._dt = float(base.control_dt)
        self._rng = np.random.default_rng()
        self.latency = 0.0
        self._commands: deque[np.ndarray] = deque()
        self._velocity = np.zeros(ACTION_DIM)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            # Its own stream, so the environment's episode does not change with the dynamics.
            self._rng = np.random.default_rng((seed, 0x6C617465))
        self.latency = float(self._rng.uniform(*self.dynamics.latency))
        # Commands given in the last ceil(latency / dt) steps, oldest first; zero before the episode.
        self._commands = deque([np.zeros(ACTION_DIM)] * (math.ceil(self.latency / self._dt) + 1))
        self._velocity = np.zeros(ACTION_DIM)
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "command_latency": self.latency}

    def step(self, action):
        command = np.asarray(action, dtype=np.float64).reshape(-1)
        if command.shape != (ACTION_DIM,) or not np.all(np.isfinite(command)):
            self._velocity = np.zeros(ACTION_DIM)
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, {**info, "command_latency": self.latency}
        self._commands.append(np.clip(command, -1.0, 1.0) * self._max_speed)
        self._commands.popleft()
        mean = self._follow_one_step()
        obs, reward, terminated, truncated, info = self.env.step((mean / self._max_speed).astype(np.float32))
        return obs, reward, terminated, truncated, {**info, "command_latency": self.latency}

    def _follow_one_step(self) -> np.ndarray:
        """Advance the base's velocity through this step; return its mean over the step."""
        sub = self._dt / PROFILE_POINTS
        newest = len(self._commands) - 1
        total = np.zeros(ACTION_DIM)
        for k in range(PROFILE_POINTS):
            # At time t into this step, the command in effect is the one given at t - latency.
            t = (k + 0.5) * sub
            index = newest + math.floor((t - self.latency) / self._dt + 1e-9)
            target = self._commands[max(0, min(newest, index))]
            change = np.clip(target - self._velocity, -self._max_accel * sub, self._max_accel * sub)
            self._velocity = self._velocity + change
            total += self._velocity
        return total / PROFILE_POINTS
