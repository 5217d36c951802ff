"""Shared test fixtures: an isolated ROS 2 environment per test and nodes in their own processes.

Each test gets its own ROS_DOMAIN_ID (1-101, from the pid and a counter, so parallel test runs
on one machine do not hear each other), discovery limited to this machine, and ROS logs in its
tmp directory. Nodes under test run as separate processes (`python -m ...`), so they talk to the
test over real DDS exactly as on a robot.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # the package, when it is not installed
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test-only modules (onnx_policies)

_domain_counter = itertools.count()

# A shell's background job (`cmd &` without job control: nohup, CI wrappers) starts with SIGINT
# ignored, and an ignored signal stays ignored in every child: `ros2 launch` would then not hear
# the SIGINT the launch tests send it, as a user's Ctrl-C. A Python handler is reset at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def next_domain_id() -> int:
    # Fast DDS maps domain ids above ~101 onto ports outside the valid range: stay in 1..101.
    return (os.getpid() * 13 + next(_domain_counter)) % 101 + 1


@dataclass
class RosEnv:
    domain_id: int
    env: dict[str, str]   # environment for node processes
    log_dir: Path


@pytest.fixture
def ros_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RosEnv:
    """Set ROS 2 isolation variables in this process (for in-process rclpy) and for children."""
    domain_id = next_domain_id()
    log_dir = tmp_path / "ros_log"
    log_dir.mkdir()
    variables = {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(log_dir),
        # Fast DDS 2.x (Jazzy) and 3.x (Kilted) read different names.
        "FASTRTPS_DEFAULT_PROFILES_FILE": str(REPO_ROOT / "config" / "fastdds_large_shm.xml"),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO_ROOT / "config" / "fastdds_large_shm.xml"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return RosEnv(domain_id, dict(os.environ), log_dir)


@pytest.fixture
def ros_context(ros_env: RosEnv):
    """An rclpy context of its own for the test process, on the test's domain."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=ros_env.domain_id)
    yield context
    rclpy.try_shutdown(context=context)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class NodeProcess:
    """A node running in its own process; output goes to a log file for failure messages."""

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # Started with SIGINT ignored, as a background job of a non-interactive shell starts it
        # (CI, nohup): a node must install its own SIGINT handler to stop on `stop()`. A nav node
        # that relied on Python's inherited default hung here whenever the suite ran in the background.
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=REPO_ROOT, preexec_fn=_ignore_sigint)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (what launch and Ctrl-C send) and wait; SIGKILL and fail if it hangs."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGUSR1)   # nodes dump their stacks into the log (faulthandler)
                time.sleep(1.0)
                self.process.kill()
                self.process.wait()
                self._log.close()
                pytest.fail(f"{self.command[2]} did not stop within {timeout} s after SIGINT:\n{self.output()}")
        self._log.close()
        return self.process.returncode


@pytest.fixture
def start_node(ros_env: RosEnv, tmp_path: Path):
    """start_node(module, *ros_args) -> NodeProcess; every node still running is stopped afterwards."""
    started: list[NodeProcess] = []

    def start(module: str, *ros_args: str) -> NodeProcess:
        command = [sys.executable, "-m", module, "--ros-args", *ros_args]
        node = NodeProcess(command, ros_env.env, tmp_path / f"{module.rsplit('.', 1)[-1]}_{len(started)}.log")
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()
