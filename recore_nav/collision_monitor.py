"""The collision monitor: the last word between the policy and `cmd_vel`, from depth or a laser scan.

Nav2's collision monitor is the model. Obstacle points, in the robot's base frame, come from a
depth image (with the camera's pose on the robot) or a laser scan (with the scanner's pose). The
robot's footprint (a circle or a polygon) is swept along the path the command would drive (the
arc of its linear and angular velocity), as far as the slow-down distance:

- the footprint would touch an obstacle within `stop_distance` of travel: linear velocity 0,
  rotation in place still allowed (`stopped: obstacle 0.12 m`);
- within `slowdown_distance`: linear velocity times `slowdown_ratio` (`slowed: obstacle 0.42 m`);
- driving where the sensor cannot see (backwards, for a forward camera) is not allowed;
- no input yet, input older than `input_timeout`, or input that could not be read: the caller
  stops the robot (`input_problem`).

A learned policy that never met such a stop in training does not always turn away by itself
(it was trained where touching a wall slides the robot along it), so three additions keep it
moving without contact: where the command would be stopped, the nearest turn rate up to
`steer_limit` whose arc is clear is taken instead (`steered: obstacle 0.12 m`); a robot that may
not drive turns in place away from the obstacles ahead, at least `turn_away` fast, on one side
until it drives again; and obstacles that left a forward camera's view are remembered by
odometry for `obstacle_memory` seconds, so turning beside a wall it no longer sees is checked.
Setting the three to 0 leaves Nav2's behaviour.

Plain numpy, no ROS: the navigation node converts its messages with `depth_image_metres` and
`scan_ranges`, evaluation feeds the simulator's depth image, and both run the same `limit`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from recore_nav.image_conversion import ImageConversionError, check_image_layout

STOPPED = "stopped"
SLOWED = "slowed"
STEERED = "steered"
# How the statuses of a monitor changing a command begin (normal operation, not a fault).
ACTING = (SLOWED, STEERED, f"{STOPPED}: obstacle", f"{STOPPED}: forward motion", f"{STOPPED}: reverse motion")
STEER_CHOICES = 31          # turn rates tried between -steer_limit and steer_limit

# sensor_msgs/Image depth encodings -> (numpy dtype without byte order, metres per unit).
DEPTH_ENCODINGS: dict[str, tuple[str, float]] = {"32FC1": ("f4", 1.0), "16UC1": ("u2", 0.001)}


class SafetyInputError(ValueError):
    """Safety input that cannot be used; the message is one line saying why."""


@dataclass(frozen=True)
class DepthCamera:
    """A depth camera on the robot: its pose in the base frame and its vertical field of view
    (used where its CameraInfo is not: square pixels, the principal point at the image centre).
    Depth is along the optical axis. The defaults are the embedded simulator's camera (0.5 m
    high, 90 degrees, level)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.5
    yaw: float = 0.0                       # rad, about the base's z axis
    pitch: float = 0.0                     # rad, > 0 looks down
    vertical_fov: float = math.pi / 2      # rad


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera's focal lengths and principal point in pixels of a width x height image:
    sensor_msgs/CameraInfo's K, pixel centres at integer coordinates as ROS has them."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_vertical_fov(cls, vertical_fov: float, width: int, height: int) -> CameraIntrinsics:
        """Square pixels, the principal point at the image centre."""
        focal = (height / 2.0) / math.tan(vertical_fov / 2.0)
        return cls(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera's intrinsics for the image resized to width x height."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                                width, height)

    @property
    def half_horizontal_fov(self) -> float:
        """The narrower side's angle from the optical axis to the image edge, rad."""
        return min(math.atan((self.cx + 0.5) / self.fx), math.atan((self.width - 0.5 - self.cx) / self.fx))


def camera_info_intrinsics(msg: Any) -> CameraIntrinsics:
    """A sensor_msgs/CameraInfo's intrinsics, or SafetyInputError saying why they cannot be used."""
    width, height = int(msg.width), int(msg.height)
    k = [float(v) for v in msg.k]
    if width <= 0 or height <= 0:
        raise SafetyInputError(f"invalid camera_info: image size {width}x{height}")
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise SafetyInputError("invalid camera_info: K is not 9 finite numbers")
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if fx <= 0.0 or fy <= 0.0:
        raise SafetyInputError(f"invalid camera_info: focal lengths {fx:g}, {fy:g} (uncalibrated camera?)")
    if not (0.0 <= cx <= width - 1 and 0.0 <= cy <= height - 1):
        raise SafetyInputError(f"invalid camera_info: principal point ({cx:g}, {cy:g}) "
                               f"outside the {width}x{height} image")
    return CameraIntrinsics(fx, fy, cx, cy, width, height)


@dataclass(frozen=True)
class ScannerPose:
    """A laser scanner's pose in the base frame (its scan plane is taken as parallel to the floor)."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0


@dataclass(frozen=True)
class MonitorConfig:
    """Zones, footprint and input limits; distances in m, times in s."""

    footprint_radius: float = 0.2          # a circle about the base origin, when `footprint` is empty
    footprint: tuple[tuple[float, float], ...] = ()   # a polygon (x, y) in the base frame
    stop_distance: float = 0.15            # travel before contact below which linear velocity is 0
    slowdown_distance: float = 0.4         # ... below which it is scaled by slowdown_ratio
    slowdown_ratio: float = 0.5
    steer_limit: float = 1.5               # rad/s; > 0: a stopped command may turn up to this instead
    turn_away: float = 1.0                 # rad/s; > 0: stopped, turn away from the obstacle at least this fast
    min_obstacle_height: float = 0.05      # depth points outside these heights (the floor, above
    max_obstacle_height: float = 1.0       # the robot) are not obstacles
    input_timeout: float = 0.5
    obstacle_memory: float = 2.0           # s an obstacle out of the sensor's view is remembered (odometry)
    command_latency: float = 0.0           # s before a command acts: its path starts where the last one leads
    path_resolution: float = 0.02          # the swept footprint is checked every this much travel

    def __post_init__(self) -> None:
        if not 0.0 <= self.stop_distance <= self.slowdown_distance:
            raise ValueError(f"need 0 <= stop_distance <= slowdown_distance, got {self.stop_distance}, "
                             f"{self.slowdown_distance}")
        if not 0.0 <= self.slowdown_ratio <= 1.0:
            raise ValueError(f"slowdown_ratio must be in [0, 1], got {self.slowdown_ratio}")
        if not self.footprint and self.footprint_radius <= 0.0:
            raise ValueError("footprint_radius must be > 0 when no footprint polygon is given")
        if self.footprint and len(self.footprint) < 3:
            raise ValueError(f"a footprint polygon needs at least 3 points, got {len(self.footprint)}")
        if self.input_timeout <= 0.0 or self.path_resolution <= 0.0:
            raise ValueError("input_timeout and path_resolution must be > 0")
        if self.obstacle_memory < 0.0 or self.command_latency < 0.0:
            raise ValueError("obstacle_memory and command_latency must be >= 0")


@dataclass(frozen=True)
class Obstacles:
    """What one sensor reading says: obstacle points (N, 2) in the base frame, and where it looks:
    the headings it sees, (centre, half width) in rad, from `origin`, its position in the base frame."""

    points: np.ndarray
    view: tuple[float, float]
    origin: tuple[float, float] = (0.0, 0.0)

    def sees(self, heading: float | np.ndarray) -> bool | np.ndarray:
        """Whether the sensor looks along `heading` (rad in the base frame; arrays too)."""
        offset = (np.asarray(heading) - self.view[0] + math.pi) % (2.0 * math.pi) - math.pi
        return np.abs(offset) <= self.view[1] + 1e-9

    def sees_points(self, points: np.ndarray) -> np.ndarray:
        """Which of `points` (N, 2), in the base frame, lie in the directions the sensor looks."""
        return self.sees(np.arctan2(points[:, 1] - self.origin[1], points[:, 0] - self.origin[0]))


@dataclass(frozen=True)
class Decision:
    """The command after the monitor, and the status when it acted (None when it did not)."""

    linear: float
    angular: float
    status: str | None


# Sensor readings -> obstacles ----------------------------------------------------------------------
def depth_image_metres(msg: Any) -> np.ndarray:
    """A sensor_msgs/Image of depth as float32 (H, W) metres: 32FC1 in metres or 16UC1 in
    millimetres, either byte order. No return (0 in 16UC1, NaN or +inf in 32FC1) is NaN; -inf
    (REP 117: closer than the sensor measures) stays -inf."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise SafetyInputError(f"unsupported depth encoding {msg.encoding!r} (accepted: {', '.join(DEPTH_ENCODINGS)})")
    kind, scale = DEPTH_ENCODINGS[msg.encoding]
    size = int(kind[1])
    try:
        check_image_layout(msg, 1, size)
    except ImageConversionError as err:
        raise SafetyInputError(str(err)) from None
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    rows = np.frombuffer(memoryview(msg.data), dtype=np.uint8).reshape(height, step)[:, : width * size]
    values = np.ascontiguousarray(rows).view((">" if msg.is_bigendian else "<") + kind).reshape(height, width)
    depth = values.astype(np.float32) * np.float32(scale)
    no_return = (values == 0) if kind == "u2" else (np.isnan(depth) | (depth == np.inf))
    depth[no_return] = np.nan
    return depth


def depth_obstacles(depth: np.ndarray, camera: DepthCamera, config: MonitorConfig,
                    intrinsics: CameraIntrinsics | None = None) -> Obstacles:
    """The obstacles a depth image (H, W) or (H, W, 1) in metres shows: points between the
    configured heights, near enough to matter. A pixel at -inf (too close to measure) is an
    obstacle at the camera itself. `intrinsics` (the camera's CameraInfo, at any resolution) if
    known, else the camera's vertical field of view with square pixels."""
    depth = np.asarray(depth, dtype=np.float32)
    depth = depth.reshape(depth.shape[:2])
    height, width = depth.shape
    if intrinsics is None:
        intrinsics = CameraIntrinsics.from_vertical_fov(camera.vertical_fov, width, height)
    k = intrinsics.scaled(width, height)
    reach = config.slowdown_distance + _footprint_extent(config) + math.hypot(camera.x, camera.y)
    too_close = depth == -np.inf
    # Depth along the optical axis is at most the distance: beyond `reach` nothing can be hit.
    useful = too_close | (np.isfinite(depth) & (depth > 0.0) & (depth <= reach))
    rows, cols = np.nonzero(useful)
    d = np.where(too_close[rows, cols], 0.0, depth[rows, cols]).astype(np.float64)
    # Camera body frame: forward along the optical axis, left, up.
    left = -(cols - k.cx) / k.fx * d
    up = -(rows - k.cy) / k.fy * d
    cos_p, sin_p = math.cos(camera.pitch), math.sin(camera.pitch)
    forward_b, up_b = d * cos_p + up * sin_p, -d * sin_p + up * cos_p
    cos_y, sin_y = math.cos(camera.yaw), math.sin(camera.yaw)
    x = camera.x + cos_y * forward_b - sin_y * left
    y = camera.y + sin_y * forward_b + cos_y * left
    z = camera.z + up_b
    keep = too_close[rows, cols] | ((z >= config.min_obstacle_height) & (z <= config.max_obstacle_height))
    return Obstacles(_thinned(np.stack([x[keep], y[keep]], axis=1), config.path_resolution / 2.0),
                     (camera.yaw, k.half_horizontal_fov), (camera.x, camera.y))


def _thinned(points: np.ndarray, cell: float) -> np.ndarray:
    """One point per `cell`-sided square of the plane: a wall seen over many image rows is one
    line of points, so a large depth image costs the sweep no more than a small one."""
    if len(points) == 0:
        return points
    ij = np.floor(points / cell).astype(np.int64)
    keys = np.unique((ij[:, 0] << 32) + (ij[:, 1] & 0xFFFFFFFF))
    i, j = keys >> 32, ((keys & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000   # j sign-extended back
    return (np.stack([i, j], axis=1) + 0.5) * cell


def scan_ranges(msg: Any) -> tuple[np.ndarray, float, float, float, float]:
    """A sensor_msgs/LaserScan checked: (ranges float32, angle_min, angle_increment, range_min, range_max)."""
    values = [msg.angle_min, msg.angle_max, msg.angle_increment, msg.range_min, msg.range_max]
    if not all(math.isfinite(v) for v in values):
        raise SafetyInputError("scan angles or range limits are not finite")
    angle_min, angle_max, increment, range_min, range_max = (float(v) for v in values)
    if increment == 0.0 or (angle_max - angle_min) / increment < 0.0:
        raise SafetyInputError(f"scan angle_increment {increment:g} does not lead from {angle_min:g} to {angle_max:g}")
    if not 0.0 <= range_min < range_max:
        raise SafetyInputError(f"scan range limits [{range_min:g}, {range_max:g}] are not 0 <= min < max")
    ranges = np.asarray(msg.ranges, dtype=np.float32)
    expected = int(round((angle_max - angle_min) / increment)) + 1
    if len(ranges) == 0 or abs(len(ranges) - expected) > 1:
        raise SafetyInputError(f"scan has {len(ranges)} ranges, its angles need {expected}")
    return ranges, angle_min, increment, range_min, range_max


def scan_obstacles(ranges: np.ndarray, angle_min: float, angle_increment: float, range_min: float,
                   range_max: float, scanner: ScannerPose) -> Obstacles:
    """The obstacles a scan shows: returns within [range_min, range_max]; -inf (too close to
    measure) is an obstacle at range_min; NaN, +inf and out-of-range returns are none."""
    ranges = np.asarray(ranges, dtype=np.float64)
    angles = angle_min + angle_increment * np.arange(len(ranges))
    r = np.where(ranges == -np.inf, range_min, ranges)
    valid = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    heading = scanner.yaw + angles[valid]
    points = np.stack([scanner.x + r[valid] * np.cos(heading), scanner.y + r[valid] * np.sin(heading)], axis=1)
    span = abs(angle_increment) * len(ranges)
    centre = scanner.yaw + angle_min + angle_increment * (len(ranges) - 1) / 2.0
    return Obstacles(points, (centre, min(math.pi, span / 2.0)), (scanner.x, scanner.y))


# Frames ---------------------------------------------------------------------------------------------
Pose = tuple[float, float, float]   # the robot's (x, y, yaw) in the odometry frame


def to_odometry(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Points (N, 2) from the base frame at `pose` into the odometry frame."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    return np.stack([x + c * points[:, 0] - s * points[:, 1], y + s * points[:, 0] + c * points[:, 1]], axis=1)


def to_base(points: np.ndarray, pose: Pose) -> np.ndarray:
    """Points (N, 2) from the odometry frame into the base frame at `pose`."""
    x, y, yaw = pose
    c, s = math.cos(yaw), math.sin(yaw)
    dx, dy = points[:, 0] - x, points[:, 1] - y
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)


# The swept footprint ------------------------------------------------------------------------------
def _footprint_extent(config: MonitorConfig) -> float:
    if config.footprint:
        return max(math.hypot(x, y) for x, y in config.footprint)
    return config.footprint_radius


def inside_footprint(points: np.ndarray, config: MonitorConfig) -> np.ndarray:
    """Which of `points` (..., 2), in the base frame, lie inside the footprint."""
    x, y = points[..., 0], points[..., 1]
    if not config.footprint:
        return x * x + y * y <= config.footprint_radius ** 2
    inside = np.zeros(x.shape, dtype=bool)
    corners = config.footprint
    for (x1, y1), (x2, y2) in zip(corners, corners[1:] + corners[:1]):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def arc_poses(linear: float, angular: float, times: np.ndarray) -> np.ndarray:
    """The poses (x, y, yaw), shape (S, 3), reached from the origin after `times` seconds of
    driving (linear, angular)."""
    signed, yaw = linear * times, angular * times
    x = signed * np.sinc(yaw / np.pi)
    y = signed * np.sin(yaw / 2.0) * np.sinc(yaw / (2.0 * np.pi))
    return np.stack([x, y, yaw], axis=1)


def swept_poses(linear: float, angular: float, distance: float, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Travel s = 0, resolution, ... distance along the arc of (linear, angular) and the pose
    (x, y, yaw) reached at each, shape (S, 3)."""
    travel = np.arange(0.0, distance + 0.5 * resolution, resolution)
    return travel, arc_poses(linear, angular, travel / abs(linear))


def turn_blocked(angular: float, points: np.ndarray, config: MonitorConfig) -> bool:
    """Whether turning in place sweeps a polygon footprint into one of `points` before its
    outermost corner has moved `stop_distance` (a circle about the base turns clear of everything)."""
    if angular == 0.0 or not config.footprint or len(points) == 0:
        return False
    extent = _footprint_extent(config)
    step = config.path_resolution / extent
    angles = math.copysign(1.0, angular) * np.arange(step, config.stop_distance / extent + step, step)
    cos_t, sin_t = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x, y = points[None, :, 0], points[None, :, 1]
    turned = np.stack([cos_t * x + sin_t * y, -sin_t * x + cos_t * y], axis=-1)
    # What the footprint already overlaps, it cannot turn away from either: not counted.
    return bool(inside_footprint(turned, config)[:, ~inside_footprint(points, config)].any())


def free_distance(linear: float, angular: float, points: np.ndarray, config: MonitorConfig) -> float:
    """How far (m of travel) the footprint goes along the command's arc before it touches one of
    `points`, checked up to the slow-down distance (inf beyond). Points already inside the
    footprint count only where they are ahead in the direction of travel (what it moves away
    from does not stop it)."""
    if linear == 0.0 or len(points) == 0:
        return math.inf
    reach = config.slowdown_distance + _footprint_extent(config)
    points = points[np.hypot(points[:, 0], points[:, 1]) <= reach]
    travel, poses = swept_poses(linear, angular, config.slowdown_distance, config.path_resolution)
    dx = points[None, :, 0] - poses[:, None, 0]
    dy = points[None, :, 1] - poses[:, None, 1]
    cos_t, sin_t = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    local = np.stack([cos_t * dx + sin_t * dy, -sin_t * dx + cos_t * dy], axis=-1)
    inside = inside_footprint(local, config)
    behind = inside[0] & (points[:, 0] * linear < 0.0)
    hit = inside[:, ~behind].any(axis=1)
    if not hit.any():
        return math.inf
    first = int(np.argmax(hit))
    return float(max(0.0, travel[first] - config.path_resolution))


class CollisionMonitor:
    """Holds the newest obstacles and limits each command by them (see the module docstring).

    With `obstacle_memory`, obstacles seen in the last that many seconds are kept in the odometry
    frame while they are out of the sensor's view (a forward camera does not see the wall beside
    the robot it saw a moment ago); what the sensor looks at again is taken from its new reading.
    """

    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        self._obstacles: Obstacles | None = None
        self._error: str | None = None
        self._received: float | None = None
        self._memory: list[tuple[float, np.ndarray]] = []   # (received, points (N, 2) in the odometry frame)
        self._turn_side = 0.0

    def set_obstacles(self, obstacles: Obstacles, received: float, pose: Pose | None = None) -> None:
        """The newest reading, and the robot's odometry pose (x, y, yaw) when it was taken, if known."""
        self._obstacles, self._error, self._received = obstacles, None, received
        if pose is None or self.config.obstacle_memory <= 0.0:
            self._memory = []
            return
        kept = []
        for seen, points in self._memory:
            if received - seen > self.config.obstacle_memory:
                continue
            points = points[~obstacles.sees_points(to_base(points, pose))]
            if len(points):
                kept.append((seen, points))
        self._memory = kept + [(received, to_odometry(obstacles.points, pose))]

    def set_input_error(self, reason: str, received: float) -> None:
        """The newest safety input was unusable: the robot stops until a good one arrives."""
        self._obstacles, self._error, self._received = None, reason, received
        self._memory = []

    def obstacle_points(self, pose: Pose | None = None) -> np.ndarray:
        """Every obstacle point the monitor holds, (N, 2) in the base frame at `pose` (the robot's
        odometry pose now; without it, the newest reading's alone)."""
        if self._obstacles is None:
            return np.zeros((0, 2))
        if pose is None or not self._memory:
            return self._obstacles.points
        return to_base(np.concatenate([points for _, points in self._memory]), pose)

    def input_problem(self, now: float) -> str | None:
        """Why the monitor cannot vouch for any motion now (a status reason), or None."""
        if self._error is not None:
            return f"invalid safety input: {self._error}"
        if self._obstacles is None or self._received is None:
            return "no safety input"
        if now - self._received > self.config.input_timeout:
            return f"safety input stale (older than {self.config.input_timeout:g} s)"
        return None

    def limit(self, linear: float, angular: float, pose: Pose | None = None,
              turn_rates: tuple[float, float] = (-math.inf, math.inf),
              previous: tuple[float, float] = (0.0, 0.0)) -> Decision:
        """The command made safe by the obstacles the monitor holds, seen from `pose` (the robot's
        odometry pose now, for remembered obstacles); call only while `input_problem` is None.
        A turn rate the monitor chooses (steering, turning away) stays within `turn_rates`, those
        the robot can reach this period. With `command_latency`, the path is checked from where
        the `previous` command (linear, angular) takes the robot before this one acts."""
        assert self._obstacles is not None
        points = self.obstacle_points(pose)
        if self.config.command_latency > 0.0 and previous[0] != 0.0:
            ahead = arc_poses(*previous, np.array([self.config.command_latency]))[0]
            points = to_base(points, (float(ahead[0]), float(ahead[1]), float(ahead[2])))
        decision = self._limit_travel(points, linear, angular, turn_rates)
        if decision.linear != 0.0:
            self._turn_side = 0.0
        if decision.linear == 0.0 and turn_blocked(decision.angular, points, self.config):
            return Decision(0.0, 0.0, f"{STOPPED}: obstacle in the turn")
        return decision

    def _limit_travel(self, points: np.ndarray, linear: float, angular: float,
                      turn_rates: tuple[float, float]) -> Decision:
        """Stop, slow, steer or leave the command by what lies along its path."""
        if linear == 0.0:
            return Decision(0.0, angular, None)
        assert self._obstacles is not None
        if not self._obstacles.sees(0.0 if linear > 0.0 else math.pi):
            direction = "forward" if linear > 0.0 else "reverse"
            return Decision(0.0, self._turned_away(points, angular, turn_rates),
                            f"{STOPPED}: {direction} motion not monitored")
        distance, allowed = self._drive(points, linear, angular)
        if allowed == linear:
            return Decision(linear, angular, None)
        if allowed is not None:
            return Decision(allowed, angular, f"{SLOWED}: obstacle {distance:.2f} m")
        cfg = self.config
        if cfg.steer_limit > 0.0:
            # The nearest turn rate on which the same speed is not stopped.
            turns = np.linspace(-cfg.steer_limit, cfg.steer_limit, STEER_CHOICES)
            turns = turns[(turns >= turn_rates[0]) & (turns <= turn_rates[1])]
            for turn in sorted(turns, key=lambda w: abs(w - angular)):
                _, steered = self._drive(points, linear, float(turn))
                if steered is not None:
                    return Decision(steered, float(turn), f"{STEERED}: obstacle {distance:.2f} m")
        return Decision(0.0, self._turned_away(points, angular, turn_rates), f"{STOPPED}: obstacle {distance:.2f} m")

    def _turned_away(self, points: np.ndarray, angular: float, turn_rates: tuple[float, float]) -> float:
        """With `turn_away`, the turn rate of a robot that may not drive: away from the side the
        obstacles ahead are on, at least `turn_away` fast, and kept to that side until it drives
        again (so an obstacle dead ahead does not make it turn back and forth). Without obstacles
        ahead, or without `turn_away`: the policy's own."""
        cfg = self.config
        if cfg.turn_away <= 0.0:
            return angular
        if self._turn_side == 0.0:
            reach = _footprint_extent(cfg) + cfg.slowdown_distance
            ahead = points[(points[:, 0] > 0.0) & (np.hypot(points[:, 0], points[:, 1]) <= reach)]
            if len(ahead) == 0:
                return angular
            self._turn_side = -1.0 if float(ahead[:, 1].mean()) > 0.0 else 1.0
        return float(np.clip(self._turn_side * max(abs(angular), cfg.turn_away), *turn_rates))

    def _drive(self, points: np.ndarray, linear: float, angular: float) -> tuple[float, float | None]:
        """The free distance along this arc, and the linear velocity allowed on it: `linear`
        outside the zones, slowed in the slow-down zone, None where it must stop."""
        cfg = self.config
        distance = free_distance(linear, angular, points, cfg)
        if distance >= cfg.slowdown_distance:
            return distance, linear
        if distance < cfg.stop_distance:
            return distance, None
        # Slower on the same turn rate is a tighter arc: check that one too.
        slowed = linear * cfg.slowdown_ratio
        if slowed == 0.0 or free_distance(slowed, angular, points, cfg) >= cfg.stop_distance:
            return distance, slowed
        return distance, None


def footprint_from_text(text: str) -> tuple[tuple[float, float], ...]:
    """Nav2's footprint string, e.g. "[[0.2, 0.15], [0.2, -0.15], [-0.2, -0.15], [-0.2, 0.15]]";
    empty text is no polygon."""
    if not text.strip():
        return ()
    try:
        corners: Sequence = yaml.safe_load(text)
        polygon = tuple((float(x), float(y)) for x, y in corners)
    except (yaml.YAMLError, TypeError, ValueError):
        raise ValueError(f"footprint must look like [[x, y], [x, y], [x, y], ...], got {text!r}") from None
    if not all(math.isfinite(v) for corner in polygon for v in corner):
        raise ValueError(f"footprint corners must be finite, got {text!r}")
    return polygon
