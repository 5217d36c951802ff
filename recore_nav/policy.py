"""Runs an exported policy bundle (policy.onnx + policy.json) one control step at a time.

`PolicyRuntime` checks the bundle against its JSON spec before the first step (schema version
and sha256 in `recore_nav.bundle`, graph names, dtypes and shapes here), picks the onnxruntime
execution provider deliberately, warms up, and carries the recurrent state and the previous
action between steps. A bad bundle is refused with a one-line `BundleError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from recore_nav.bundle import INPUT_NAMES, ONNX_FILE, OUTPUT_NAMES, BundleError, BundleSpec, read_bundle_spec
from recore_nav.task import ACTION_DIM, GOAL_DIM

PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
# The ONNX type string each input and output must have.
_ONNX_TYPES = {"rgb": "tensor(uint8)", "goal": "tensor(float)", "prev_action": "tensor(float)",
               "state": "tensor(float)", "action": "tensor(float)", "next_state": "tensor(float)"}
WARMUP_STEPS = 5


class Logger(Protocol):
    """What the runtime logs through: a `logging.Logger` or an rclpy node's logger."""

    def info(self, msg: str) -> object: ...

    def warning(self, msg: str) -> object: ...


def _requested_providers(providers: str, available: list[str]) -> list[str]:
    """The provider list to ask onnxruntime for, best first, always ending with the CPU."""
    if providers not in PROVIDER_CHOICES:
        raise BundleError(f"unknown providers {providers!r}; choose one of {', '.join(PROVIDER_CHOICES)}")
    wanted = {"cpu": [], "auto": [_CUDA], "cuda": [_CUDA], "tensorrt": [_TENSORRT, _CUDA]}[providers]
    return [p for p in wanted if p in available] + [_CPU]


def _check_io(kind: str, args: list, expected_names: tuple[str, ...],
              expected_shapes: dict[str, list[int]]) -> None:
    """Names, dtypes and shapes of the session's inputs or outputs against the spec."""
    names = tuple(arg.name for arg in args)
    if sorted(names) != sorted(expected_names):
        raise BundleError(f"{ONNX_FILE} {kind} names {list(names)}, expected {list(expected_names)}")
    for arg in args:
        if arg.type != _ONNX_TYPES[arg.name]:
            raise BundleError(f"{ONNX_FILE} {kind} {arg.name!r} has type {arg.type}, "
                              f"expected {_ONNX_TYPES[arg.name]}")
        expected = expected_shapes[arg.name]
        shape = list(arg.shape)
        # Only the batch dimension may be symbolic (exporters often name it); the rest is fixed.
        batch_ok = len(shape) > 0 and (shape[0] == 1 or not isinstance(shape[0], int))
        if len(shape) != len(expected) or not batch_ok or shape[1:] != expected[1:]:
            raise BundleError(f"{ONNX_FILE} {kind} {arg.name!r} has shape {shape}, "
                              f"policy.json says {expected}")


class PolicyRuntime:
    """One recurrent policy: `step(rgb, goal) -> action`, state kept between steps.

    providers: "auto" (CUDA if it really loads, else CPU), "cpu", "cuda", or "tensorrt"
    (TensorRT, then CUDA, then CPU); the provider that runs is in `provider` and in the log.
    """

    def __init__(self, bundle_dir: str | Path, providers: str = "auto",
                 logger: Logger | None = None, cpu_threads: int = 1) -> None:
        import onnxruntime as ort  # imported here so `recore_nav` imports without it

        self._log = logger if logger is not None else logging.getLogger(__name__)
        self.bundle_dir = Path(bundle_dir)
        self.spec: BundleSpec = read_bundle_spec(self.bundle_dir)
        onnx_path = self.bundle_dir / ONNX_FILE

        options = ort.SessionOptions()
        # Latency over throughput: one small graph per control step on a shared CPU, so one or two
        # threads, no inter-op parallelism, and no spinning threads stealing the other cores.
        options.intra_op_num_threads = max(1, int(cpu_threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # provider load failures are reported below, in one line

        requested = _requested_providers(providers, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=requested)
        except Exception as err:  # onnxruntime raises its own exception types for bad files
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(f"policy bundle {self.bundle_dir}: cannot load {ONNX_FILE}: {first_line}") from None
        # onnxruntime-gpu lists CUDA even where its libraries are missing, then silently runs on
        # the CPU: what the session actually got is the truth.
        self.provider: str = self._session.get_providers()[0]
        if requested[0] != _CPU and self.provider != requested[0]:
            self._log.warning(f"policy runtime: {requested[0]} did not load, running on {self.provider}")
        if providers in ("cuda", "tensorrt") and requested[0] == _CPU:
            self._log.warning(f"policy runtime: {providers} asked for but not available in this "
                              f"onnxruntime, running on {self.provider}")

        try:
            _check_io("input", self._session.get_inputs(), INPUT_NAMES, self.spec.input_shapes())
            _check_io("output", self._session.get_outputs(), OUTPUT_NAMES, self.spec.output_shapes())
        except BundleError as err:
            raise BundleError(f"policy bundle {self.bundle_dir}: {err}") from None

        self._image_shape = (self.spec.image_height, self.spec.image_width, 3)
        self._state = np.zeros((1, self.spec.state_size), dtype=np.float32)
        self._prev_action = np.zeros((1, ACTION_DIM), dtype=np.float32)
        self._warm_up()
        self._log.info(f"policy runtime: {self.spec.name or self.bundle_dir.name} on {self.provider}, "
                       f"image {self.spec.image_height}x{self.spec.image_width}, state {self.spec.state_size}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, 3) of the rgb images `step` takes."""
        return self._image_shape

    @property
    def state(self) -> np.ndarray:
        """A copy of the recurrent state, shape (state_size,)."""
        return self._state[0].copy()

    @property
    def prev_action(self) -> np.ndarray:
        return self._prev_action[0].copy()

    def reset(self) -> None:
        """Zero the recurrent state and the previous action: call it when a new goal arrives."""
        self._state.fill(0.0)
        self._prev_action.fill(0.0)

    def step(self, rgb: np.ndarray, goal: np.ndarray, prev_action: np.ndarray | None = None) -> np.ndarray:
        """One policy step: action (2,) float32 in [-1, 1].

        rgb: uint8 (H, W, 3) at the bundle's image size; goal: (distance, cos, sin) in the robot
        frame; prev_action: the action actually executed last step if it differs from the
        policy's own (e.g. after speed limits), else the runtime's previous action is used.
        Raises ValueError on bad input or a non-finite output, leaving the state unchanged.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != self._image_shape:
            got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ValueError(f"rgb must be uint8 {self._image_shape}, got {got}")
        goal = np.asarray(goal, dtype=np.float32).reshape(-1)
        if goal.shape != (GOAL_DIM,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal must be {GOAL_DIM} finite numbers, got {goal}")
        if prev_action is not None:
            prev = np.asarray(prev_action, dtype=np.float32).reshape(1, -1)
            if prev.shape != (1, ACTION_DIM) or not np.all(np.isfinite(prev)):
                raise ValueError(f"prev_action must be {ACTION_DIM} finite numbers, got {prev_action}")
            self._prev_action[:] = np.clip(prev, -1.0, 1.0)
        action, next_state = self._session.run(OUTPUT_NAMES, {
            "rgb": np.ascontiguousarray(rgb)[None],
            "goal": goal[None],
            "prev_action": self._prev_action,
            "state": self._state,
        })
        if not (np.all(np.isfinite(action)) and np.all(np.isfinite(next_state))):
            raise ValueError("policy produced a non-finite action or state")
        action = np.clip(action.reshape(ACTION_DIM), -1.0, 1.0).astype(np.float32)
        self._state = next_state.astype(np.float32, copy=False).reshape(1, self.spec.state_size)
        self._prev_action[0] = action
        return action

    def _warm_up(self) -> None:
        # The first runs allocate memory and pick kernels; do that now, not in the first control step.
        rgb = np.zeros(self._image_shape, dtype=np.uint8)
        goal = np.array([1.0, 1.0, 0.0], dtype=np.float32)
        for _ in range(WARMUP_STEPS):
            self.step(rgb, goal)
        self.reset()
