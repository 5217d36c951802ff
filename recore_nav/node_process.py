"""How every recore_nav node process starts, spins and stops.

rclpy's own SIGINT handler shuts the context down at once, before a node could publish its last
zero Twist or close its bag. Here SIGINT and SIGTERM (what Ctrl-C and `ros2 launch` send) only set
a flag; the spin loop wakes at least every `SPIN_PERIOD` (also on simulated time with no /clock,
where a timer alone would block the wait forever), sees it, and the node cleans up with the
context still up. `kill -USR1 <pid>` prints every thread's stack, even inside rclpy's C code.
"""

from __future__ import annotations

import faulthandler
import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from recore_nav.ros_interface import use_large_shm_transport

SPIN_PERIOD = 0.1   # s


class StopRequest:
    """Set by SIGINT or SIGTERM."""

    def __init__(self) -> None:
        self.signal: int | None = None
        # SIGINT explicitly: a process started in the background of a non-interactive shell (CI,
        # nohup) inherits SIGINT ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._set)
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    def _set(self, signum: int, frame: object) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None


def init(args: list[str] | None) -> tuple[StopRequest, str | None]:
    """Fast DDS's large shared-memory profile, rclpy without its signal handlers, our stop flag.
    Returns the flag and the DDS profile in use."""
    profile = use_large_shm_transport()   # before rclpy.init
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return StopRequest(), profile


def spin(node: Node, stop: StopRequest, done: Callable[[], bool] = lambda: False) -> None:
    """Spin until a stop signal, `done()`, or an external shutdown."""
    try:
        while rclpy.ok(context=node.context) and not stop and not done():
            rclpy.spin_once(node, timeout_sec=SPIN_PERIOD)
    except ExternalShutdownException:
        pass
