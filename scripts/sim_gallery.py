"""Pictures of the embedded simulator: a contact sheet per split and a video of an episode.

    python scripts/sim_gallery.py [--out runs/gallery] [--size 128] [--samples 8] [--gif]

Writes `sheet_<split>.png` (rows: rgb, depth, seg; one column per scene) for train, ood and
sim2real, and `episode_<split>.mp4` (or .gif): camera, depth, classes and the top-down map with
the robot's path, driven by the shortest-path expert (`env.oracle_action`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from recore_nav.sim import DEPTH_MAX, SPLITS, PointNavEnv

SEG_PALETTE = np.array([[200, 170, 120],   # floor
                        [70, 110, 200],    # wall
                        [210, 60, 60],     # obstacle
                        [150, 150, 150]],  # other (ceiling)
                       dtype=np.uint8)


def depth_picture(depth: np.ndarray) -> np.ndarray:
    scaled = (255 * (1.0 - np.clip(depth[..., 0] / DEPTH_MAX, 0.0, 1.0) ** 0.5)).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def tiles(obs: dict[str, np.ndarray], tile: int) -> list[np.ndarray]:
    pictures = [obs["rgb"], depth_picture(obs["depth"]), SEG_PALETTE[obs["seg"]]]
    return [cv2.resize(p, (tile, tile), interpolation=cv2.INTER_NEAREST) for p in pictures]


def contact_sheet(split: str, samples: int, size: int, seed: int, tile: int) -> np.ndarray:
    env = PointNavEnv(split=split, image_size=size)
    columns = []
    for k in range(samples):
        obs, _ = env.reset(seed=seed + k)
        for _ in range(8 + 4 * k):       # some expert steps, so views are not all from a start
            obs, _, terminated, truncated, _ = env.step(env.oracle_action())
            if terminated or truncated:
                break
        columns.append(np.concatenate(tiles(obs, tile), axis=0))
    env.close()
    gap = np.full((columns[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([c for column in columns for c in (column, gap)][:-1], axis=1)


def episode_frames(split: str, size: int, seed: int, tile: int) -> list[np.ndarray]:
    env = PointNavEnv(split=split, image_size=size, seed=seed, task_config=None)
    obs, info = env.reset()
    frames = []
    while True:
        top = env.top_down_map(pixels_per_metre=40.0)
        scale = tile / top.shape[0]
        top = cv2.resize(top, (int(top.shape[1] * scale) // 2 * 2, tile), interpolation=cv2.INTER_AREA)
        frame = np.concatenate([*tiles(obs, tile), top], axis=1)
        frames.append(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2])
        obs, _, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            break
    print(f"episode {split}: success={info['success']} spl={info['spl']:.2f} steps={info['steps']} "
          f"collisions={info['collisions']}")
    env.close()
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/gallery"))
    parser.add_argument("--size", type=int, default=128, help="rendered image size (pixels)")
    parser.add_argument("--samples", type=int, default=8, help="scenes per contact sheet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gif", action="store_true", help="write GIFs instead of MP4s")
    parser.add_argument("--video-splits", nargs="+", default=["train", "ood"], choices=SPLITS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tile = max(128, args.size)
    for split in SPLITS:
        path = args.out / f"sheet_{split}.png"
        imageio.imwrite(path, contact_sheet(split, args.samples, args.size, args.seed, tile))
        print(f"wrote {path}")
    for split in args.video_splits:
        frames = episode_frames(split, args.size, args.seed, tile=256)
        path = args.out / f"episode_{split}.{'gif' if args.gif else 'mp4'}"
        if args.gif:
            imageio.mimsave(path, frames, duration=100, loop=0)
        else:
            imageio.mimsave(path, frames, fps=10, macro_block_size=1)
        print(f"wrote {path} ({len(frames)} frames)")


if __name__ == "__main__":
    main()
