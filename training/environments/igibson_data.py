"""iGibson's own data behind `--env igibson`: its Turtlebot and its scenes, used unchanged.

Where iGibson's data is installed (a workstation: iGibson's `download_assets` and
`download_ig_dataset`, Gibson's static scenes by their licence form), one directory holds it the
way iGibson lays it out, and `igibson_data` names it:

    <data>/assets/       GIBSON_ASSETS_PATH: VERSION, models/turtlebot/turtlebot.urdf, models/...
    <data>/ig_dataset/   IGIBSON_DATASET_PATH: VERSION, metadata/categories.txt, objects/, and per
                         interactive scene scenes/<id>/urdf/<id>_best.urdf, scenes/<id>/layout/floor_trav_0.png
    <data>/g_dataset/    GIBSON_DATASET_PATH: per static scene <id>/mesh_z_up.obj, floors.txt, floor_trav_0.png

    make_env("igibson", igibson_data="<data>", igibson_scenes=("Rs_int", "Beechwood_0_int"))
    python training/train_igibson.py --env igibson --igibson-data <data> --igibson-scenes Rs_int ...
    python training/evaluate.py BUNDLE --env igibson --igibson-data <data> --igibson-scenes Rs_int

Without `igibson_data` the iGibson environment runs this project's scenes and robot
(`igibson_assets.py`). With it, `find_igibson_data` checks the tree first and names in one line
the first file that is missing. A scene id found under `ig_dataset/scenes/` is an iGibson
interactive scene, loaded as iGibson's "igibson" scene (`InteractiveIndoorScene`, its objects
and its doors opened, as iGibson's navigation configs open them); one under `g_dataset/` is a
Gibson static scene ("gibson", `StaticIndoorScene`: one mesh). The robot is iGibson's
`Turtlebot` class with the URDF the assets hold. Nothing here writes into the data directory
(iGibson itself keeps `ig_dataset/scene_instances/` when it loads an interactive scene, as it
always does). Each reset draws one of the scenes (seeded, as
the embedded simulator draws its layouts); `TaskConfig.episodes_per_layout` keeps a scene for
several episodes, since loading an interactive scene takes seconds.

The task stays this project's (`PointNavEnv`: draws, reward, success, SPL, expert and the
observation contract), so a policy trained on one source runs on the other. Per scene:

- traversability (`traversability_map`): the scene's own map of its lowest floor,
  `floor_trav_0.png` (0.01 m a pixel, 255 free; pixel (row i, column j) at iGibson's world
  ((j, i) - N / 2) * 0.01 m, rows growing with y: `IndoorScene.map_to_world`), taken at the task's
  grid resolution (a cell is free where all its pixels are), inflated by the robot's radius plus
  margin and cut to its largest region, as the embedded simulator's layouts are. It gives the
  start, goal, geodesic reward and the expert; the task's frame is iGibson's world.
- seg: an interactive scene's semantic classes (iGibson's `seg`, a class per object category,
  `classes_from_semantics`): floors and carpets floor, walls wall, ceilings, the background and
  the robot other, every other category obstacle. A Gibson scene is one unlabelled mesh, so its
  rendered points are classed by height above the floor (`classes_from_height`): up to
  FLOOR_BAND floor, CEILING_HEIGHT and above other (the ceiling, and whatever reaches that
  high), the rest wall (furniture too: the mesh does not tell them apart); no surface other.
- collisions: touching the floor's bodies (the ground plane; floors and carpets) is no
  collision, whatever the robot's URDF (iGibson's own configs name the Turtlebot's wheel links
  instead, which fits that URDF only).

Tested (`test/test_igibson_data.py`) with real iGibson 2.2.2 on a stand-in tree laid out as
above but built from this project's generated layouts: `write_assets` as `assets/` (its robot at
the Turtlebot's URDF path), layouts as Gibson static scenes in `g_dataset/` (`write_scene`, with
free-floor maps) and one as an interactive scene in `ig_dataset/` (walls, floors and ceilings as
building-structure URDFs, the obstacles as objects of a `box` category). iGibson's real assets
and datasets cannot be downloaded on the machine this was built on, so the real Turtlebot,
`Rs_int` and the other real scenes (their objects and doors, Gibson's scanned meshes, several
floors) have not run here.

Imports only numpy, PIL and recore_nav.task at module level: the worker (iGibson's venv) uses
the seg rules.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from recore_nav import task
from training.environments.igibson_assets import ROBOT_URDF, TRAV_MAP_PIXEL, turtlebot_config

if TYPE_CHECKING:
    from recore_nav.sim.layout import TraversabilityMap

DATA_HINT = ("igibson_data (--igibson-data) must be iGibson's data directory, holding assets/ and g_dataset/ "
             "or ig_dataset/")
VERSIONS = ((2, 0, 6), (2, 2, 3))       # igibson/__init__.py: assets and ig_dataset VERSION in [min, max)
INTERACTIVE, STATIC = "igibson", "gibson"   # iGibson's config `scene` of each kind
FLOOR_CATEGORIES = ("floors", "carpet")     # what iGibson's BehaviorRobot also lets its body touch
# iGibson's navigation configs (configs/turtlebot_nav.yaml): its map at 0.1 m, eroded by 2.
# Only iGibson's own task code reads that map here (the task reads the image itself).
IGIBSON_TRAV_MAP_RESOLUTION = 0.1
IGIBSON_TRAV_MAP_EROSION = 2
FLOOR_BAND = 0.05           # m above the floor's height: a static scene's floor
CEILING_HEIGHT = 2.0        # m above the floor's height and higher: a static scene's ceiling (other)


class IGibsonDataError(ValueError):
    """iGibson's data tree is missing or incomplete; the message names the path."""


@dataclass(frozen=True)
class DataScene:
    """One of iGibson's scenes: its id, kind (INTERACTIVE or STATIC) and directory."""

    scene_id: str
    kind: str
    directory: Path

    @property
    def trav_map(self) -> Path:
        """Its lowest floor's traversability image, where iGibson reads it (`trav_map_type`
        with_obj: the objects are obstacles)."""
        return self.directory / ("layout" if self.kind == INTERACTIVE else "") / "floor_trav_0.png"

    def required_files(self) -> tuple[Path, ...]:
        if self.kind == INTERACTIVE:
            return self.directory / "urdf" / f"{self.scene_id}_best.urdf", self.trav_map
        return self.directory / "mesh_z_up.obj", self.directory / "floors.txt", self.trav_map

    def map_extent(self) -> float:
        """The diagonal of its traversability image, m: no two points of the scene are farther apart."""
        with Image.open(self.trav_map) as image:        # reads the header only
            return float(np.hypot(*image.size) * TRAV_MAP_PIXEL)


@dataclass(frozen=True)
class IGibsonData:
    """A checked iGibson data tree and the scenes episodes are drawn from."""

    root: Path
    scenes: tuple[DataScene, ...]

    @property
    def assets(self) -> Path:
        return self.root / "assets"

    def environment(self) -> dict[str, str]:
        """The variables that point iGibson (`igibson/__init__.py`) at this tree."""
        return {"GIBSON_ASSETS_PATH": str(self.assets), "GIBSON_DATASET_PATH": str(self.root / "g_dataset"),
                "IGIBSON_DATASET_PATH": str(self.root / "ig_dataset")}


def find_igibson_data(root: str | Path, scene_ids: Sequence[str]) -> IGibsonData:
    """The data tree at `root` with these scenes, or IGibsonDataError naming what is missing."""
    root = Path(root).expanduser().resolve()       # absolute: the worker runs in another directory
    if not root.is_dir():
        raise IGibsonDataError(f"{root} not found: {DATA_HINT}")
    _require_version(root / "assets" / "VERSION")
    _require(root / "assets" / ROBOT_URDF)
    if isinstance(scene_ids, str):
        scene_ids = (scene_ids,)
    if not scene_ids:
        raise IGibsonDataError(f"no scene given: name the scenes of {root} to draw episodes from "
                               "(igibson_scenes, --igibson-scenes), e.g. Rs_int")
    scenes = []
    for scene_id in scene_ids:
        if not scene_id or "/" in scene_id or scene_id in (".", ".."):
            raise IGibsonDataError(f"{scene_id!r} is not a scene id")
        interactive, static = root / "ig_dataset" / "scenes" / scene_id, root / "g_dataset" / scene_id
        if interactive.is_dir():
            _require_version(root / "ig_dataset" / "VERSION")
            _require(root / "ig_dataset" / "metadata" / "categories.txt")
            scene = DataScene(scene_id, INTERACTIVE, interactive)
        elif static.is_dir():
            scene = DataScene(scene_id, STATIC, static)
        else:
            raise IGibsonDataError(f"scene {scene_id!r} not found: neither {interactive} nor {static} exists "
                                   f"({DATA_HINT})")
        for path in scene.required_files():
            _require(path)
        scenes.append(scene)
    return IGibsonData(root, tuple(scenes))


def _require(path: Path) -> None:
    if not path.is_file():
        raise IGibsonDataError(f"{path} not found: {DATA_HINT}")


def _require_version(path: Path) -> None:
    _require(path)
    text = path.read_text().strip()
    try:
        version = tuple(int(part) for part in text.split(".")[:3])
    except ValueError:
        version = ()
    low, high = VERSIONS
    if not low <= version < high:
        raise IGibsonDataError(f"{path} says {text!r}: iGibson 2.2.2 reads data versions in "
                               f"[{'.'.join(map(str, low))}, {'.'.join(map(str, high))})")


def traversability_map(scene: DataScene, resolution: float, inflation_radius: float) -> TraversabilityMap:
    """The task's map of a scene from its own traversability image (module docstring), in
    iGibson's world frame."""
    from recore_nav.sim.layout import TraversabilityMap

    image = np.asarray(Image.open(scene.trav_map))
    if image.ndim == 3:             # iGibson reads a grey image; a colour one by its first channel
        image = image[..., 0]
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise IGibsonDataError(f"{scene.trav_map} is not a square grey image (iGibson's traversability maps are)")
    size = image.shape[0]
    pixels = max(1, int(round(resolution / TRAV_MAP_PIXEL)))       # image pixels a cell side
    cells = -(-size // pixels)
    free = np.zeros((cells * pixels, cells * pixels), dtype=bool)
    free[:size, :size] = image == 255
    free = free.reshape(cells, pixels, cells, pixels).all(axis=(1, 3))
    corner = -size / 2.0 * TRAV_MAP_PIXEL
    return TraversabilityMap.from_free_space(free, (corner, corner), pixels * TRAV_MAP_PIXEL, inflation_radius)


def scene_config(scene: DataScene, camera_fovy_deg: float) -> dict[str, Any]:
    """The iGibson config keys of a scene of iGibson's data (merge them over the task's config)."""
    return {
        "scene": scene.kind, "scene_id": scene.scene_id, "build_graph": True,
        "trav_map_resolution": IGIBSON_TRAV_MAP_RESOLUTION, "trav_map_erosion": IGIBSON_TRAV_MAP_EROSION,
        "trav_map_type": "with_obj", "should_open_all_doors": True,
        "robot": turtlebot_config(),
        "collision_ignore_link_a_ids": [],      # the floor's bodies are ignored instead (module docstring)
        "output": ["task_obs", "rgb", "pc"] + (["seg"] if scene.kind == INTERACTIVE else []),
        "vertical_fov": camera_fovy_deg,
        "hide_robot": True, "enable_pbr": False, "enable_shadow": False, "load_texture": True,
    }


# --------------------------------------------------------------------------------------------
# seg: our classes from iGibson's


def classes_from_semantics(class_map: np.ndarray, class_ids: Mapping[str, int]) -> np.ndarray:
    """Our seg classes (task.SEG_CLASSES) of iGibson's semantic classes (H, W) in an interactive
    scene, given its class ids by category name (`igibson.utils.semantics_utils.CLASS_NAME_TO_CLASS_ID`):
    floors and carpets floor, walls wall, ceilings, background (0) and robots (1) other, every
    other class obstacle."""
    floor, wall, obstacle, other = (task.SEG_CLASSES.index(name) for name in ("floor", "wall", "obstacle", "other"))
    values = np.asarray(class_map, dtype=np.int64)
    table = np.full(max(int(values.max(initial=0)), *class_ids.values(), 1) + 1, obstacle, dtype=np.uint8)
    table[[0, 1]] = other                   # SemanticClass.BACKGROUND, ROBOTS
    for name in FLOOR_CATEGORIES:
        if name in class_ids:
            table[class_ids[name]] = floor
    if "walls" in class_ids:
        table[class_ids["walls"]] = wall
    if "ceilings" in class_ids:
        table[class_ids["ceilings"]] = other
    return table[np.clip(values, 0, None)]


def classes_from_height(height: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Our seg classes of a static scene's rendered points from their height above the floor
    (m) where `surface` (no surface: other): floor up to FLOOR_BAND, other from CEILING_HEIGHT,
    wall between."""
    h = np.asarray(height, dtype=np.float64)
    classes = np.full(h.shape, task.SEG_CLASSES.index("wall"), dtype=np.uint8)
    classes[h <= FLOOR_BAND] = task.SEG_CLASSES.index("floor")
    classes[(h >= CEILING_HEIGHT) | ~np.asarray(surface, dtype=bool)] = task.SEG_CLASSES.index("other")
    return classes


# --------------------------------------------------------------------------------------------
# The command line of the programs that make environments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--igibson-data` and `--igibson-scenes` (with `--env igibson`)."""
    parser.add_argument("--igibson-data", type=Path, metavar="DIR",
                        help="with --env igibson: iGibson's own data directory (assets/, ig_dataset/, g_dataset/), "
                             "whose Turtlebot and scenes replace this project's")
    parser.add_argument("--igibson-scenes", nargs="+", default=[], metavar="ID",
                        help="with --igibson-data: the scenes to draw episodes from, e.g. Rs_int Beechwood_0_int "
                             "(interactive, ig_dataset/scenes/) or Gibson ids (g_dataset/)")


def env_kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The environment's keyword arguments `add_arguments`'s options ask for ({}: this project's
    scenes); ValueError where they do not fit together."""
    if args.igibson_data is None:
        if args.igibson_scenes:
            raise ValueError("--igibson-scenes goes with --igibson-data")
        return {}
    if getattr(args, "env", "igibson") != "igibson":
        raise ValueError("--igibson-data goes with --env igibson")
    return {"igibson_data": str(Path(args.igibson_data).expanduser().resolve()),
            "igibson_scenes": tuple(args.igibson_scenes)}
