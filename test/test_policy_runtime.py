"""PolicyRuntime on real ONNX graphs run by onnxruntime: correct bundles run, bad ones are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto
from onnx_policies import goal_seeking_action, write_goal_seeking_bundle

from recore_nav.bundle import JSON_FILE, ONNX_FILE, BundleError, sha256_of
from recore_nav.policy import PolicyRuntime

GOAL = np.array([1.5, 0.6, 0.8], dtype=np.float32)


def image(height: int = 64, width: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_correct_bundle_steps_keeps_and_resets_state(tmp_path: Path) -> None:
    runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "b", state_size=4), providers="cpu")
    assert runtime.provider == "CPUExecutionProvider"
    assert runtime.image_shape == (64, 64, 3)
    # Warm-up ran steps, then reset: the state starts at zero.
    np.testing.assert_array_equal(runtime.state, np.zeros(4, dtype=np.float32))

    action = runtime.step(image(), GOAL)
    assert action.shape == (2,) and action.dtype == np.float32
    np.testing.assert_allclose(action, goal_seeking_action(GOAL), rtol=1e-5)
    assert np.all(np.abs(action) <= 1.0)
    np.testing.assert_allclose(runtime.prev_action, action)

    runtime.step(image(), GOAL)
    runtime.step(image(), GOAL)
    np.testing.assert_array_equal(runtime.state, np.full(4, 3.0, dtype=np.float32))  # the graph counts steps

    runtime.reset()
    np.testing.assert_array_equal(runtime.state, np.zeros(4, dtype=np.float32))
    np.testing.assert_array_equal(runtime.prev_action, np.zeros(2, dtype=np.float32))


def test_goal_behind_and_to_the_left_turns_left(tmp_path: Path) -> None:
    runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "b"), providers="cpu")
    left = runtime.step(image(), np.array([2.0, -0.6, 0.8], dtype=np.float32))
    right = runtime.step(image(), np.array([2.0, 0.6, -0.8], dtype=np.float32))
    assert left[1] > 0.5 and right[1] < -0.5


def test_other_image_size_and_symbolic_batch_dimension_load(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", height=48, width=80, batch_dim="batch")
    runtime = PolicyRuntime(bundle, providers="auto")
    assert runtime.image_shape == (48, 80, 3)
    assert runtime.step(image(48, 80), GOAL).shape == (2,)


def test_step_refuses_bad_input_and_keeps_state(tmp_path: Path) -> None:
    runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "b"), providers="cpu")
    runtime.step(image(), GOAL)
    with pytest.raises(ValueError, match="rgb must be uint8"):
        runtime.step(image(32, 32), GOAL)
    with pytest.raises(ValueError, match="rgb must be uint8"):
        runtime.step(image().astype(np.float32), GOAL)
    with pytest.raises(ValueError, match="goal must be 3 finite"):
        runtime.step(image(), np.array([np.nan, 1.0, 0.0]))
    with pytest.raises(ValueError, match="goal must be 3 finite"):
        runtime.step(image(), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="prev_action"):
        runtime.step(image(), GOAL, prev_action=np.array([np.inf, 0.0]))
    assert runtime.state[0] == 1.0


def test_missing_files_are_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b")
    (bundle / ONNX_FILE).unlink()
    with pytest.raises(BundleError, match=f"missing file {ONNX_FILE}"):
        PolicyRuntime(bundle)
    with pytest.raises(BundleError, match=f"missing file {JSON_FILE}"):
        PolicyRuntime(tmp_path / "nowhere")


def test_tampered_onnx_is_refused_by_checksum(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b")
    data = bytearray((bundle / ONNX_FILE).read_bytes())
    data[-5] ^= 0xFF
    (bundle / ONNX_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256") as err:
        PolicyRuntime(bundle)
    assert "\n" not in str(err.value)


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", spec_overrides={"schema_version": 99})
    with pytest.raises(BundleError, match="schema version 99"):
        PolicyRuntime(bundle)


def test_unparseable_onnx_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b")
    (bundle / ONNX_FILE).write_bytes(b"this is not a protobuf")
    spec = json.loads((bundle / JSON_FILE).read_text())
    spec["onnx_sha256"] = sha256_of(bundle / ONNX_FILE)  # a matching checksum: the graph itself is bad
    (bundle / JSON_FILE).write_text(json.dumps(spec))
    with pytest.raises(BundleError, match="cannot load policy.onnx") as err:
        PolicyRuntime(bundle)
    assert "\n" not in str(err.value)


def test_wrong_input_names_are_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", input_names=("image", "goal", "prev_action", "state"))
    with pytest.raises(BundleError, match=r"input names \['image', 'goal', 'prev_action', 'state'\]"):
        PolicyRuntime(bundle)


def test_wrong_output_names_are_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", output_names=("action", "new_state"))
    with pytest.raises(BundleError, match="output names"):
        PolicyRuntime(bundle)


def test_image_size_other_than_the_json_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", height=32, width=32,
                                       spec_overrides={"image_height": 64, "image_width": 64})
    with pytest.raises(BundleError, match=r"input 'rgb' has shape \[1, 32, 32, 3\], policy.json says \[1, 64, 64, 3\]"):
        PolicyRuntime(bundle)


def test_state_size_other_than_the_json_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", state_size=8, spec_overrides={"state_size": 16})
    with pytest.raises(BundleError, match="input 'state' has shape"):
        PolicyRuntime(bundle)


def test_wrong_goal_size_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", goal_size=4)
    with pytest.raises(BundleError, match=r"input 'goal' has shape \[1, 4\]"):
        PolicyRuntime(bundle)


def test_float_image_input_is_refused(tmp_path: Path) -> None:
    bundle = write_goal_seeking_bundle(tmp_path / "b", rgb_dtype=TensorProto.FLOAT)
    with pytest.raises(BundleError, match=r"input 'rgb' has type tensor\(float\), expected tensor\(uint8\)"):
        PolicyRuntime(bundle)


def test_unknown_provider_choice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="unknown providers 'gpu'"):
        PolicyRuntime(write_goal_seeking_bundle(tmp_path / "b"), providers="gpu")


def test_cuda_request_runs_on_what_really_loaded(tmp_path: Path, caplog) -> None:
    # Without CUDA (or with onnxruntime-gpu but no CUDA libraries) it must say so and run on the CPU.
    with caplog.at_level("WARNING"):
        runtime = PolicyRuntime(write_goal_seeking_bundle(tmp_path / "b"), providers="cuda")
    if runtime.provider != "CUDAExecutionProvider":
        assert runtime.provider == "CPUExecutionProvider"
        assert "running on CPUExecutionProvider" in caplog.text
    np.testing.assert_allclose(runtime.step(image(), GOAL), goal_seeking_action(GOAL), rtol=1e-5)
