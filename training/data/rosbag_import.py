"""rosbag2 recordings (MCAP or sqlite3) -> an offline dataset in the layout of `training.data.datasets`.

    python -m training.data.rosbag_import runs/bag_001 runs/bag_002 --out data/robot.npz [--rate 10 --image-size 64 --gap 1.0]

Reads the topics `recore_nav/recorder.py` records (camera image, odometry, cmd_vel, and goal_pose
where present; depth with `--depth`) with the `rosbags` library, no ROS install needed. Topics
are found by their default names under any namespace (`/robot1/odom` matches `odom`), or named
exactly with `--image-topic` and the like. Times are the bag's receive stamps.

Alignment, on a grid of control ticks at `--rate` (10 Hz: the policy's rate, `recore_nav.task`):
- each tick takes the newest image, odometry and goal received at or before it;
- its action is the cmd_vel in force over the tick's interval: the newest command received before
  the next tick, zero when that command is older than `--cmd-timeout` at the tick (a robot base
  stops on stale commands, as the navigation node and the simulator bridge do); the command
  divided by the speed limits (`--max-linear-speed`, `--max-angular-speed`), clipped to [-1, 1];
- images, odometry (or depth) missing for more than `--gap` seconds is a gap: its ticks are
  dropped, the episode ends and the grid restarts after it (a shorter gap holds the newest); a
  new goal, an odometry jump over `--jump` metres between ticks (a reset) and the end of a bag
  end the episode too; episodes shorter than `--min-steps` are dropped.
Per tick: `observations` = `robot_pose` (x, y, yaw) from odometry, `rgb` resized (OpenCV,
`recore_nav.image_conversion`), `goal` in the robot frame (NaN before the first goal), `actions`,
`terminals` at each episode's last tick, and `depth` (float16 metres, no reading = 10 m) if asked.
A bag that cannot be read, is empty or lacks a required topic fails with a one-line reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from recore_nav.geometry import goal_in_robot_frame, yaw_from_quaternion
from recore_nav.image_conversion import ImageConversionError, image_msg_to_policy_rgb
from recore_nav.ros_interface import CMD_VEL_TOPIC, DEPTH_TOPIC, GOAL_TOPIC, IMAGE_TOPIC, ODOM_TOPIC
from recore_nav.task import CONTROL_RATE_HZ, DEPTH_MAX, MAX_ANGULAR_SPEED, MAX_LINEAR_SPEED
from training.data.datasets import DatasetError, OfflineDataset, describe, save_dataset

# role -> (default topic, message type, required)
ROLES = {
    "image": (IMAGE_TOPIC, "sensor_msgs/msg/Image", True),
    "odom": (ODOM_TOPIC, "nav_msgs/msg/Odometry", True),
    "cmd_vel": (CMD_VEL_TOPIC, "geometry_msgs/msg/Twist", True),
    "goal": (GOAL_TOPIC, "geometry_msgs/msg/PoseStamped", False),
    "depth": (DEPTH_TOPIC, "sensor_msgs/msg/Image", False),
}
DEPTH_ENCODINGS = {"32FC1": (np.float32, 1.0), "16UC1": (np.uint16, 1e-3)}   # -> metres


class BagError(ValueError):
    """A bag that cannot become a dataset; the message is one line naming the bag and the reason."""


@dataclass
class ImportOptions:
    """How bags are aligned and converted (the command line's flags)."""

    rate: float = CONTROL_RATE_HZ
    image_size: int = 64
    gap: float = 1.0                  # s without images, odometry (or depth) that end an episode
    cmd_timeout: float = 0.5          # s after which a command no longer drives the robot
    jump: float = 1.0                 # m of odometry between two ticks that means a reset
    min_steps: int = 2
    depth: bool = False
    max_linear_speed: float = MAX_LINEAR_SPEED
    max_angular_speed: float = MAX_ANGULAR_SPEED
    topics: dict[str, str] = field(default_factory=dict)   # role -> topic, overriding the defaults


@dataclass
class _BagIndex:
    """Pass one over a bag: times of every message, and the small messages' contents."""

    path: Path
    connections: dict[str, list]                      # role -> the bag's connections of that topic
    times: dict[str, np.ndarray]                      # role -> receive times, ns
    poses: np.ndarray                                 # [odom, 3] x, y, yaw
    commands: np.ndarray                              # [cmd_vel, 2] linear, angular
    goals: np.ndarray                                 # [goal, 2] x, y
    frames: set[str]                                  # frame ids of odometry and goals
    messages: int


def _topic_connections(bag: Path, connections: Sequence, role: str, options: ImportOptions) -> list:
    """The connections of `role`'s topic: the one named by a flag, else the default name under any namespace."""
    default, msgtype, _ = ROLES[role]
    wanted = options.topics.get(role)
    topics = sorted({c.topic for c in connections})
    if wanted:
        matches = [t for t in topics if t == wanted or t == "/" + wanted.lstrip("/")]
    else:
        matches = [t for t in topics if t == default or t.endswith("/" + default)]
    if len(matches) > 1:
        raise BagError(f"{bag}: topics {', '.join(matches)} all match {default}; "
                       f"name one with --{role.replace('_', '-')}-topic")
    chosen = [c for c in connections if matches and c.topic == matches[0]]
    wrong = sorted({c.msgtype for c in chosen} - {msgtype})
    if wrong:
        raise BagError(f"{bag}: {matches[0]} carries {', '.join(wrong)}, expected {msgtype}")
    return chosen


def _index_bag(path: Path, options: ImportOptions, typestore, progress: bool) -> _BagIndex:
    from rosbags.highlevel import AnyReader

    roles = [r for r in ROLES if r != "depth" or options.depth]
    needed = [r for r in roles if ROLES[r][2] or r == "depth"]     # depth is needed once asked for
    with AnyReader([path], default_typestore=typestore) as reader:
        if reader.message_count == 0:
            raise BagError(f"{path}: the bag holds no messages")
        connections = {role: _topic_connections(path, reader.connections, role, options) for role in roles}
        missing = [ROLES[r][0] for r in needed if not connections[r]]
        if missing:
            found = ", ".join(sorted({c.topic for c in reader.connections})) or "none"
            raise BagError(f"{path}: no {', '.join(missing)} topic (the bag has: {found})")
        role_of = {c.id: role for role, conns in connections.items() for c in conns}
        times: dict[str, list[int]] = {role: [] for role in roles}
        poses, commands, goals, frames = [], [], [], set()
        selected = [c for conns in connections.values() for c in conns]
        total = sum(c.msgcount for c in selected)
        for conn, stamp, raw in tqdm(reader.messages(connections=selected), total=total, unit="msg",
                                     desc=f"index {path.name}", disable=not progress):
            role = role_of[conn.id]
            times[role].append(stamp)
            if role == "odom":
                msg = reader.deserialize(raw, conn.msgtype)
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                poses.append((p.x, p.y, yaw_from_quaternion(q.x, q.y, q.z, q.w)))
                frames.add(msg.header.frame_id)
            elif role == "cmd_vel":
                msg = reader.deserialize(raw, conn.msgtype)
                commands.append((msg.linear.x, msg.angular.z))
            elif role == "goal":
                msg = reader.deserialize(raw, conn.msgtype)
                goals.append((msg.pose.position.x, msg.pose.position.y))
                frames.add(msg.header.frame_id)
    silent = [ROLES[r][0] for r in needed if not times[r]]
    if silent:
        raise BagError(f"{path}: no messages on {', '.join(silent)}")
    return _BagIndex(path, connections, {r: np.asarray(t, np.int64) for r, t in times.items()},
                     np.asarray(poses, np.float64).reshape(-1, 3), np.asarray(commands, np.float64).reshape(-1, 2),
                     np.asarray(goals, np.float64).reshape(-1, 2), frames - {""}, total)


@dataclass
class _Ticks:
    """The control ticks kept from one bag, and which message each takes."""

    image: np.ndarray        # index into the bag's images, per tick
    depth: np.ndarray | None
    pose: np.ndarray         # [T, 3]
    action: np.ndarray       # [T, 2]
    goal: np.ndarray         # [T, 3]
    terminal: np.ndarray     # [T]
    clipped: int
    dropped: int             # episodes shorter than min_steps


def _newest_at(times: np.ndarray, t: np.ndarray | int) -> np.ndarray:
    """Index of the newest message received at or before t (-1 where none)."""
    return np.searchsorted(times, t, side="right") - 1


def _align(index: _BagIndex, options: ImportOptions) -> _Ticks:
    dt = int(round(1e9 / options.rate))
    gap = int(options.gap * 1e9)
    image_t, odom_t = index.times["image"], index.times["odom"]
    depth_t = index.times.get("depth")
    streams = [image_t, odom_t] + ([depth_t] if depth_t is not None else [])
    # The grid: ticks dt apart from where every stream has begun to where the first one ends; a tick
    # that falls in a gap (two messages of a stream more than `gap` apart) is dropped, and the grid
    # restarts at the gap's end.
    tick_times, segments = [], []
    t, segment, end = max(s[0] for s in streams), 0, min(s[-1] for s in streams)
    while t <= end:
        newest = [_newest_at(s, t) for s in streams]
        gaps = [s[i + 1] for s, i in zip(streams, newest) if i + 1 < len(s) and s[i + 1] - s[i] > gap]
        if gaps:
            segment += 1
            t = max(gaps)
            continue
        tick_times.append(t)
        segments.append(segment)
        t += dt
    ticks = np.asarray(tick_times, np.int64)
    segments = np.asarray(segments, np.int64)
    if len(ticks) == 0:
        return _Ticks(np.zeros(0, np.int64), None if depth_t is None else np.zeros(0, np.int64), np.zeros((0, 3)),
                      np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32), np.zeros(0, np.float32), 0, 0)

    pose = index.poses[_newest_at(odom_t, ticks)]
    # The command in force over [t, t + dt): the newest one before the next tick, unless stale at t.
    cmd_t = index.times["cmd_vel"]
    command_index = np.searchsorted(cmd_t, ticks + dt, side="left") - 1
    live = (command_index >= 0) & (ticks - cmd_t[np.maximum(command_index, 0)] <= int(options.cmd_timeout * 1e9))
    command = np.where(live[:, None], index.commands[np.maximum(command_index, 0)], 0.0)
    raw_action = command / np.array([options.max_linear_speed, options.max_angular_speed])
    raw_action[~np.isfinite(raw_action)] = 0.0
    clipped = int(np.count_nonzero(np.any(np.abs(raw_action) > 1.0, axis=1)))
    action = np.clip(raw_action, -1.0, 1.0).astype(np.float32)

    goal_t = index.times.get("goal", np.zeros(0, np.int64))
    goal_index = _newest_at(goal_t, ticks)
    goal = np.full((len(ticks), 3), np.nan, np.float32)
    for row in np.flatnonzero(goal_index >= 0):
        gx, gy = index.goals[goal_index[row]]
        goal[row] = goal_in_robot_frame(pose[row, 0], pose[row, 1], pose[row, 2], gx, gy)

    # Episodes: a new one at a gap, a new goal or an odometry jump.
    starts = np.zeros(len(ticks), bool)
    starts[0] = True
    starts[1:] |= segments[1:] != segments[:-1]
    starts[1:] |= goal_index[1:] != goal_index[:-1]
    starts[1:] |= np.hypot(*(pose[1:, :2] - pose[:-1, :2]).T) > options.jump
    episode = np.cumsum(starts) - 1
    lengths = np.bincount(episode)
    keep = lengths[episode] >= options.min_steps
    ends = np.zeros(len(ticks), bool)
    ends[:-1] = starts[1:]
    ends[-1] = True
    return _Ticks(_newest_at(image_t, ticks)[keep], _newest_at(depth_t, ticks)[keep] if depth_t is not None else None,
                  pose[keep], action[keep], goal[keep], ends[keep].astype(np.float32), clipped,
                  int(np.count_nonzero(lengths < options.min_steps)))


def _depth_msg_to_metres(msg, size: int) -> np.ndarray:
    """A depth image as float16 (size, size, 1) metres; no reading (0, NaN, inf) becomes DEPTH_MAX."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ImageConversionError(f"unsupported depth encoding {msg.encoding!r} (accepted: {', '.join(DEPTH_ENCODINGS)})")
    dtype, scale = DEPTH_ENCODINGS[msg.encoding]
    dtype = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if len(msg.data) != step * height or step < width * dtype.itemsize:
        raise ImageConversionError(f"depth buffer has {len(msg.data)} bytes, {width}x{height} with step {step}")
    rows = np.frombuffer(memoryview(msg.data), dtype=np.uint8).reshape(height, step)[:, : width * dtype.itemsize]
    metres = rows.copy().view(dtype).astype(np.float32) * scale
    metres[~np.isfinite(metres) | (metres <= 0.0)] = DEPTH_MAX
    metres = cv2.resize(np.minimum(metres, DEPTH_MAX), (size, size), interpolation=cv2.INTER_NEAREST)
    return metres.astype(np.float16)[..., None]


def _fill_images(index: _BagIndex, role: str, wanted: np.ndarray, out: np.ndarray, options: ImportOptions,
                 typestore, progress: bool) -> None:
    """Pass two: convert the images the ticks take (each once) into `out`'s rows."""
    from rosbags.highlevel import AnyReader

    convert = ((lambda m: image_msg_to_policy_rgb(m, options.image_size, options.image_size)) if role == "image"
               else (lambda m: _depth_msg_to_metres(m, options.image_size)))
    row = 0
    with AnyReader([index.path], default_typestore=typestore) as reader:
        topics = {c.topic for c in index.connections[role]}     # connections belong to their reader
        messages = reader.messages(connections=[c for c in reader.connections if c.topic in topics])
        for number, (conn, _, raw) in enumerate(tqdm(messages, total=len(index.times[role]), unit="img",
                                                     desc=f"{role} {index.path.name}", disable=not progress)):
            if row == len(wanted):
                break
            if wanted[row] != number:
                continue
            try:
                converted = convert(reader.deserialize(raw, conn.msgtype))
            except ImageConversionError as err:
                raise BagError(f"{index.path}: {role} message {number} on {conn.topic}: {err}") from None
            while row < len(wanted) and wanted[row] == number:
                out[row] = converted
                row += 1
    if row != len(wanted):
        raise BagError(f"{index.path}: the {role} messages changed between two reads of the bag")


def import_bags(paths: Sequence[str | Path], options: ImportOptions | None = None,
                progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The dataset arrays of `paths` (each bag's episodes after the previous bag's) and import statistics."""
    from rosbags.typesys import Stores, get_typestore

    options = options or ImportOptions()
    typestore = get_typestore(Stores.ROS2_JAZZY)
    started = time.perf_counter()
    indexed: list[tuple[_BagIndex, _Ticks]] = []
    for path in map(Path, paths):
        try:
            index = _index_bag(path, options, typestore, progress)
        except BagError:
            raise
        except Exception as err:   # noqa: BLE001 - rosbags raises many kinds for a damaged file
            reason = " ".join(str(err).split()) or type(err).__name__
            raise BagError(f"{path}: unreadable bag ({type(err).__name__}: {reason})") from None
        if len(index.frames) > 1:
            print(f"warning: {path}: odometry and goals in different frames {sorted(index.frames)}; "
                  "goals are taken as given in the odometry frame", file=sys.stderr)
        indexed.append((index, _align(index, options)))
    steps = sum(len(ticks.image) for _, ticks in indexed)
    if steps == 0:
        raise BagError(f"{', '.join(map(str, paths))}: no episode of {options.min_steps} or more control ticks "
                       f"(image and odometry never fresh together for long enough)")
    size = options.image_size
    arrays = {"rgb": np.zeros((steps, size, size, 3), np.uint8)}
    if options.depth:
        arrays["depth"] = np.zeros((steps, size, size, 1), np.float16)
    row = 0
    for index, ticks in indexed:
        rows = slice(row, row + len(ticks.image))
        _fill_images(index, "image", ticks.image, arrays["rgb"][rows], options, typestore, progress)
        if options.depth:
            _fill_images(index, "depth", ticks.depth, arrays["depth"][rows], options, typestore, progress)
        row = rows.stop
    pose = np.concatenate([t.pose for _, t in indexed]).astype(np.float32)
    arrays.update(observations=pose, robot_pose=pose.copy(),
                  actions=np.concatenate([t.action for _, t in indexed]),
                  goal=np.concatenate([t.goal for _, t in indexed]),
                  terminals=np.concatenate([t.terminal for _, t in indexed]))
    seconds = time.perf_counter() - started
    messages = sum(index.messages for index, _ in indexed)
    return arrays, {"bags": len(indexed), "messages": messages, "seconds": seconds,
                    "messages_per_second": messages / seconds, "steps": steps,
                    "trajectories": int(arrays["terminals"].sum()),
                    "clipped_actions": sum(t.clipped for _, t in indexed),
                    "short_episodes_dropped": sum(t.dropped for _, t in indexed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn rosbag2 recordings into an offline dataset (.npz).")
    parser.add_argument("bags", nargs="+", type=Path, help="bag directories or .mcap/.db3 files")
    parser.add_argument("--out", type=Path, required=True, help="the dataset .npz to write")
    defaults = ImportOptions()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="control ticks per second")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="stored image side, pixels")
    parser.add_argument("--gap", type=float, default=defaults.gap, help="seconds without data that end an episode")
    parser.add_argument("--cmd-timeout", type=float, default=defaults.cmd_timeout,
                        help="seconds after which a command counts as zero")
    parser.add_argument("--jump", type=float, default=defaults.jump, help="odometry jump (m) that ends an episode")
    parser.add_argument("--min-steps", type=int, default=defaults.min_steps, help="shortest episode kept")
    parser.add_argument("--depth", action="store_true", help=f"import {DEPTH_TOPIC} as well")
    parser.add_argument("--max-linear-speed", type=float, default=defaults.max_linear_speed, help="m/s of action 1")
    parser.add_argument("--max-angular-speed", type=float, default=defaults.max_angular_speed, help="rad/s of action 1")
    for role, (topic, msgtype, _) in ROLES.items():
        parser.add_argument(f"--{role.replace('_', '-')}-topic", default=None,
                            help=f"{msgtype} topic (default: {topic} under any namespace)")
    parser.add_argument("--compress", action="store_true", help="zlib-compress the file")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.image_size < 1 or args.gap <= 0 or args.min_steps < 2:
        parser.error("--rate, --image-size and --gap must be positive, --min-steps at least 2")
    options = ImportOptions(
        rate=args.rate, image_size=args.image_size, gap=args.gap, cmd_timeout=args.cmd_timeout, jump=args.jump,
        min_steps=args.min_steps, depth=args.depth, max_linear_speed=args.max_linear_speed,
        max_angular_speed=args.max_angular_speed,
        topics={role: getattr(args, f"{role}_topic") for role in ROLES if getattr(args, f"{role}_topic")})
    try:
        arrays, stats = import_bags(args.bags, options)
        path = save_dataset(args.out, arrays, compress=args.compress)
    except (BagError, DatasetError) as err:
        print(f"rosbag_import: {err}", file=sys.stderr)
        return 2
    print(f"read {stats['messages']:,} messages from {stats['bags']} bag(s) in {stats['seconds']:.1f} s: "
          f"{stats['messages_per_second']:,.0f} messages/s")
    print(describe(OfflineDataset.from_arrays(arrays, str(path))))
    if stats["clipped_actions"] or stats["short_episodes_dropped"]:
        print(f"{stats['clipped_actions']} commands beyond the speed limits clipped; "
              f"{stats['short_episodes_dropped']} episodes shorter than {options.min_steps} ticks dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
