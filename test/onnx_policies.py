"""Small, real ONNX policy bundles for tests, built with the `onnx` helper API.

`write_goal_seeking_bundle` writes a bundle whose graph follows the bundle contract and steers
toward the goal: linear = tanh(2 * distance * cos bearing), angular = tanh(3 * sin bearing).
The image and previous action enter the graph with zero weight (so they are real inputs) and the
next state counts steps (state + 1), so tests can see state being kept and reset. With
`echo_prev_action`, the next state's first two entries are the previous action the graph was
given instead, so tests can see what a caller fed back.
Keyword arguments break the contract on purpose (names, shapes, dtypes) for refusal tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from recore_nav.bundle import ONNX_FILE, BundleSpec, write_bundle_json

LINEAR_GAIN = 2.0
ANGULAR_GAIN = 3.0


def goal_seeking_action(goal: np.ndarray) -> np.ndarray:
    """What the graph computes, in numpy, for checking the runtime's output."""
    distance, cos_bearing, sin_bearing = (float(v) for v in goal)
    return np.tanh([LINEAR_GAIN * distance * cos_bearing, ANGULAR_GAIN * sin_bearing]).astype(np.float32)


def goal_seeking_model(height: int = 64, width: int = 64, state_size: int = 8,
                       input_names: tuple[str, str, str, str] = ("rgb", "goal", "prev_action", "state"),
                       output_names: tuple[str, str] = ("action", "next_state"),
                       rgb_dtype: int = TensorProto.UINT8, goal_size: int = 3,
                       batch_dim: int | str = 1, echo_prev_action: bool = False,
                       image_gain: float = 0.0) -> onnx.ModelProto:
    """image_gain > 0 adds image_gain * mean(rgb) to both pre-tanh actions (bench/ros_latency.py
    reads which camera frame a command came from that way)."""
    rgb, goal, prev_action, state = input_names
    action, next_state = output_names
    # features = [d*d, d*cos, d*sin, d, cos, sin]; weights pick d*cos for linear, sin for angular.
    weights = np.zeros((2 * goal_size, 2), dtype=np.float32)
    weights[1, 0] = LINEAR_GAIN
    weights[min(5, 2 * goal_size - 1), 1] = ANGULAR_GAIN
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero_index"),
        numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero_gain"),
        numpy_helper.from_array(np.array([image_gain], dtype=np.float32), "image_gain"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Gather", [goal, "zero_index"], ["distance"], axis=1),
        helper.make_node("Mul", [goal, "distance"], ["goal_times_distance"]),
        helper.make_node("Concat", ["goal_times_distance", goal], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "weights"], ["steer"]),
        # Image and previous action: real inputs with zero weight.
        helper.make_node("Cast", [rgb], ["rgb_float"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["rgb_float"], ["rgb_mean"], keepdims=0),
        helper.make_node("ReduceSum", [prev_action], ["prev_sum"], keepdims=0),
        helper.make_node("Mul", ["prev_sum", "zero_gain"], ["nothing"]),
        helper.make_node("Mul", ["rgb_mean", "image_gain"], ["image_term"]),
        helper.make_node("Add", ["steer", "nothing"], ["steer_only"]),
        helper.make_node("Add", ["steer_only", "image_term"], ["pre_action"]),
        helper.make_node("Tanh", ["pre_action"], [action]),
    ]
    if echo_prev_action:
        initializers += [numpy_helper.from_array(np.array([2], dtype=np.int64), "two_index"),
                         numpy_helper.from_array(np.array([state_size], dtype=np.int64), "state_end"),
                         numpy_helper.from_array(np.array([1], dtype=np.int64), "state_axis")]
        nodes += [helper.make_node("Add", [state, "one"], ["counted"]),
                  helper.make_node("Slice", ["counted", "two_index", "state_end", "state_axis"], ["rest"]),
                  helper.make_node("Concat", [prev_action, "rest"], [next_state], axis=1)]
    else:
        nodes.append(helper.make_node("Add", [state, "one"], [next_state]))
    inputs = [
        helper.make_tensor_value_info(rgb, rgb_dtype, [batch_dim, height, width, 3]),
        helper.make_tensor_value_info(goal, TensorProto.FLOAT, [batch_dim, goal_size]),
        helper.make_tensor_value_info(prev_action, TensorProto.FLOAT, [batch_dim, 2]),
        helper.make_tensor_value_info(state, TensorProto.FLOAT, [batch_dim, state_size]),
    ]
    outputs = [
        helper.make_tensor_value_info(action, TensorProto.FLOAT, [batch_dim, 2]),
        helper.make_tensor_value_info(next_state, TensorProto.FLOAT, [batch_dim, state_size]),
    ]
    graph = helper.make_graph(nodes, "goal_seeking_policy", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(model)
    return model


def write_goal_seeking_bundle(bundle_dir: Path, height: int = 64, width: int = 64,
                              state_size: int = 8, spec_overrides: dict | None = None,
                              **model_kwargs) -> Path:
    """Write policy.onnx + policy.json into bundle_dir; spec_overrides change what the JSON states."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    model = goal_seeking_model(height, width, state_size, **model_kwargs)
    onnx.save(model, bundle_dir / ONNX_FILE)
    spec = BundleSpec(image_height=height, image_width=width, state_size=state_size,
                      max_linear_speed=0.5, max_angular_speed=1.5, name="goal_seeking_test",
                      training={"method": "hand-written test graph"})
    for key, value in (spec_overrides or {}).items():
        setattr(spec, key, value)
    write_bundle_json(bundle_dir, spec)
    return bundle_dir
