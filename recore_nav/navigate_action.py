"""Nav2's `navigate_to_pose` action (nav2_msgs/action/NavigateToPose) for the navigation node.

RViz's "Nav2 Goal" tool, `nav2_simple_commander` and behaviour trees send goals here. One goal is
driven at a time, as Nav2's navigators do: a newer goal (action or `goal_pose` topic) preempts the
one being driven, which ends aborted with "preempted". Feedback at the control rate: the current
pose in the odometry frame, the time navigating, the straight-line distance remaining (the node
has no map to plan a path on) and the time remaining at the speed limit. The result's
`error_code` is 0 on success and nav2's UNKNOWN (9000) with a one-line `error_msg` otherwise.
The `behavior_tree` field is ignored: there is no behaviour tree, the policy drives.

nav2_msgs has no PyPI wheel: where it is not installed, `available()` is False and the node
keeps the topic only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from builtin_interfaces.msg import Duration
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.task import Future

try:
    from nav2_msgs.action import NavigateToPose
except ImportError:
    NavigateToPose = None

ACTION_NAME = "navigate_to_pose"
# nav2's NavigateToPose result codes (the Kilted definition names them; Jazzy's has only NONE).
ERROR_NONE, ERROR_UNKNOWN = 0, 9000


def available() -> bool:
    return NavigateToPose is not None


@dataclass
class ActiveGoal:
    handle: Any                     # rclpy ServerGoalHandle
    done: Future
    started: float                  # node clock, s
    finished: bool = field(default=False)


class NavigateToPoseServer:
    """The action server; the node owns the decisions and tells it how each goal ends."""

    def __init__(self, node: Any, submit: Callable[[Any, Any], None], now: Callable[[], float]) -> None:
        """`submit(pose_stamped, goal)` hands an accepted goal to the node as if it came on the topic."""
        self._node, self._submit, self._now = node, submit, now
        self._server = ActionServer(node, NavigateToPose, ACTION_NAME, execute_callback=self._execute,
                                    goal_callback=lambda request: GoalResponse.ACCEPT,
                                    cancel_callback=lambda handle: CancelResponse.ACCEPT)

    async def _execute(self, handle: Any) -> Any:
        goal = ActiveGoal(handle, Future(), self._now())
        self._submit(handle.request.pose, goal)
        return await goal.done

    # How a goal ends -------------------------------------------------------------------------------
    def succeed(self, goal: ActiveGoal) -> None:
        self._finish(goal, "succeed", ERROR_NONE, "")

    def abort(self, goal: ActiveGoal, reason: str) -> None:
        self._finish(goal, "abort", ERROR_UNKNOWN, reason)

    def cancelled(self, goal: ActiveGoal) -> None:
        self._finish(goal, "canceled", ERROR_NONE, "cancelled")

    def _finish(self, goal: ActiveGoal, how: str, code: int, message: str) -> None:
        if goal.finished:
            return
        goal.finished = True
        if goal.handle.is_active:
            getattr(goal.handle, how)()
        result = NavigateToPose.Result()
        result.error_code, result.error_msg = code, message
        goal.done.set_result(result)

    def publish_feedback(self, goal: ActiveGoal, pose_stamped: Any, distance: float, max_speed: float) -> None:
        feedback = NavigateToPose.Feedback()
        feedback.current_pose = pose_stamped
        feedback.navigation_time = _duration(self._now() - goal.started)
        feedback.estimated_time_remaining = _duration(distance / max_speed if max_speed > 0 else 0.0)
        feedback.distance_remaining = float(distance)
        goal.handle.publish_feedback(feedback)

    def destroy(self) -> None:
        self._server.destroy()


def _duration(seconds: float) -> Duration:
    seconds = max(0.0, seconds)
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int((seconds - whole) * 1e9))
