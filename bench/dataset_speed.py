"""Speed of making offline datasets: generation steps per second and bag import messages per second.

    MUJOCO_GL=egl python bench/dataset_speed.py [--pointmaze-episodes 10] [--embedded-episodes 10]
        [--bag-seconds 30] [--bag-image 640x480] [--only pointmaze|embedded|import]

Prints, each in one process on one core (wall-clock time, so a busy machine reads slower; the
machine line after the numbers says how busy it was):
- pointmaze medium and large `navigate` (OGBench's 1,001-step episodes, the oracle-subgoal expert):
  stored steps per second, and the full OGBench-size dataset's time (1,000 episodes) at that speed;
- the embedded simulator's `navigate` and `explore` at 64x64 with depth: steps per second;
- the importer on a synthetic recording (`test/bag_fixtures.py`: 30 Hz rgb images of --bag-image,
  20 Hz odometry, 10 Hz cmd_vel) written as MCAP: messages per second and MB per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from machine import MachineWatch   # bench/machine.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))   # bag_fixtures: the synthetic recordings the tests use


def bench_pointmaze(episodes: int) -> None:
    from training.data.generators import pointmaze

    for maze in pointmaze.MAZES:
        stats = pointmaze.generate("navigate", maze, episodes=episodes, seed=0, progress=False).stats
        full = pointmaze.DEFAULTS["navigate"][0] * pointmaze.DEFAULTS["navigate"][1] / stats["steps_per_second"]
        print(f"pointmaze-{maze}-navigate: {stats['steps_per_second']:,.0f} steps/s ({stats['steps']:,} steps); "
              f"OGBench's 1,000 x 1,001 steps would take {full / 60:.1f} min")


def bench_embedded(episodes: int) -> None:
    from training.data.generators import embedded

    for dataset_type in ("navigate", "explore"):
        stats = embedded.generate(dataset_type, episodes=episodes, steps=201, seed=0, image_size=64, depth=True,
                                  progress=False).stats
        print(f"embedded-{dataset_type} (64x64 rgb + depth): {stats['steps_per_second']:,.0f} steps/s "
              f"({stats['steps']:,} steps, {episodes} episodes)")


def bench_import(seconds: float, width: int, height: int) -> None:
    from bag_fixtures import SyntheticBag, write_bag
    from training.data.rosbag_import import ImportOptions, import_bags

    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        started = time.perf_counter()
        messages = write_bag(bag, SyntheticBag(duration=seconds, image_size=(width, height), encoding="bgr8"))
        written = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in bag.iterdir()) / 1e6
        _, stats = import_bags([bag], ImportOptions(image_size=64), progress=False)
    print(f"import {width}x{height} bgr8 at 30 Hz ({seconds:g} s, {messages:,} messages, {size_mb:,.0f} MB MCAP, "
          f"written in {written:.1f} s): {stats['messages_per_second']:,.0f} messages/s, "
          f"{size_mb / stats['seconds']:,.0f} MB/s -> {stats['steps']:,} steps at 64x64")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pointmaze-episodes", type=int, default=10)
    parser.add_argument("--embedded-episodes", type=int, default=10)
    parser.add_argument("--bag-seconds", type=float, default=30.0)
    parser.add_argument("--bag-image", default="640x480", help="WIDTHxHEIGHT of the recorded camera")
    parser.add_argument("--only", choices=("pointmaze", "embedded", "import"), default=None)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    width, height = (int(v) for v in args.bag_image.lower().split("x"))
    watch = MachineWatch()
    if args.only in (None, "pointmaze"):
        bench_pointmaze(args.pointmaze_episodes)
    if args.only in (None, "embedded"):
        bench_embedded(args.embedded_episodes)
    if args.only in (None, "import"):
        bench_import(args.bag_seconds, width, height)
        bench_import(args.bag_seconds, 64, 64)
    print(watch.report())


if __name__ == "__main__":
    main()
