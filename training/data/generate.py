"""Make an offline dataset: `python -m training.data.generate <kind> --out PATH [options]`.

Kinds: `pointmaze-medium-<type>`, `pointmaze-large-<type>` (OGBench's pointmaze, OGBench's sizes
by default) and `embedded-<type>` (this package's simulator, with images), where <type> is
`navigate`, `stitch` or `explore` (see `training/data/generators/`). For example:

    python -m training.data.generate pointmaze-medium-navigate --out data/pointmaze-medium-navigate.npz
    python -m training.data.generate pointmaze-large-stitch --out data/pm-large-stitch.npz --episodes 50
    python -m training.data.generate embedded-explore --out data/embedded-explore.npz --episodes 200 --depth

Sizes, noise and seed are flags; leaving one out takes the kind's default. An embedded dataset
whose images could exceed `--max-gb` is refused before anything runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from training.data.datasets import DatasetError, OfflineDataset, describe, save_dataset
from training.data.generators import DATASET_TYPES, Generated

ENVIRONMENTS = ("pointmaze-medium", "pointmaze-large", "embedded")
KINDS = tuple(f"{env}-{kind}" for env in ENVIRONMENTS for kind in DATASET_TYPES)


def generate(kind: str, episodes: int | None = None, steps: int | None = None, seed: int = 0,
             noise: float | None = None, progress: bool = True, **embedded_options) -> Generated:
    """The dataset of `kind` (one of KINDS); `embedded_options` go to the embedded generator."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    environment, dataset_type = kind.rsplit("-", 1)
    if environment == "embedded":
        from training.data.generators import embedded
        return embedded.generate(dataset_type, episodes, steps, seed, noise, progress=progress, **embedded_options)
    from training.data.generators import pointmaze
    return pointmaze.generate(dataset_type, environment.split("-", 1)[1], episodes, steps, seed, noise,
                              progress=progress)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS, metavar="KIND", help=f"one of {', '.join(KINDS)}")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--episodes", type=int, default=None, help="episodes (default: the kind's)")
    parser.add_argument("--steps", type=int, default=None, help="stored steps per episode, at most (default: the kind's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=None, help="Gaussian action noise (default: the kind's)")
    parser.add_argument("--compress", action="store_true", help="zlib-compress the file (smaller, slower)")
    embedded = parser.add_argument_group("embedded simulator")
    embedded.add_argument("--split", default="train", help="appearance split (train, ood, sim2real)")
    embedded.add_argument("--image-size", type=int, default=64)
    embedded.add_argument("--depth", action="store_true", help="store depth (float16 metres) too")
    embedded.add_argument("--max-gb", type=float, default=4.0, help="refuse datasets whose arrays could exceed this")
    args = parser.parse_args(argv)

    options = ({"split": args.split, "image_size": args.image_size, "depth": args.depth, "max_gb": args.max_gb}
               if args.kind.startswith("embedded") else {})
    try:
        generated = generate(args.kind, args.episodes, args.steps, args.seed, args.noise, **options)
        path = save_dataset(args.out, generated.arrays, compress=args.compress)
    except (ValueError, DatasetError) as err:
        print(f"generate: {err}", file=sys.stderr)
        return 2
    print(describe(OfflineDataset.from_arrays(generated.arrays, str(path))))
    print(", ".join(f"{k} {v:,.0f}" if abs(v) >= 100 else f"{k} {v:.3g}" for k, v in generated.stats.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
