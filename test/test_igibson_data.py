"""iGibson's own data behind `--env igibson` (`training/environments/igibson_data.py`).

iGibson's real assets and scenes (its Turtlebot, `Rs_int`, Gibson's scans) cannot be downloaded
on the machine these tests were written on, so they run on a stand-in data tree laid out as
iGibson's, built from this project's generated layouts:
- `assets/`: this project's `write_assets` (its robot at the Turtlebot's URDF path);
- `g_dataset/<id>/`: layouts as Gibson static scenes (`write_scene`: one mesh, `floors.txt`),
  each with a Gibson-style traversability image of the free floor (not inflated by any robot);
- `ig_dataset/`: a layout as an iGibson interactive scene (`write_interactive_standin`): its
  walls, floors and ceilings as building-structure URDFs, its obstacles as objects of a `box`
  category, `metadata/categories.txt`, and the maps iGibson's `InteractiveIndoorScene` reads.
The first tests need no iGibson (the checks, the map, the seg rules, the switch's plumbing); the
rest run real iGibson 2.2.2 (skipped, saying how to build it, where it is not built).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

from recore_nav import task
from recore_nav.sim.factory import check_env_available, make_env
from recore_nav.sim.layout import Box, Layout, LayoutConfig, TraversabilityMap, generate_layout
from recore_nav.sim.scene import RobotSpec
from training.environments import igibson_assets as ia
from training.environments import igibson_data as idata

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENE_IDS = ("Standin_0", "Standin_1")          # static (g_dataset)
INTERACTIVE_ID = "Standin_int"                  # interactive (ig_dataset)
CONFIG = LayoutConfig()
FLOOR, WALL, OBSTACLE, OTHER = range(4)


# --------------------------------------------------------------------------------------------
# The stand-in data tree


def free_floor_image(layout: Layout, offset: tuple[float, float]) -> np.ndarray:
    """A Gibson-style `floor_trav_0.png` of a layout: 0.01 m a pixel, 255 where the pixel's
    centre is on a room's floor and in no wall or obstacle, pixel (row i, column j) at iGibson's
    ((j, i) - N / 2) * 0.01 m (`IndoorScene.map_to_world`)."""
    b = layout.bounds
    reach = max(abs(b.x0 + offset[0]), abs(b.x1 + offset[0]), abs(b.y0 + offset[1]), abs(b.y1 + offset[1])) + 0.5
    size = 20 * math.ceil(reach / 0.1)
    centres = (np.arange(size) + 0.5 - size / 2) * 0.01
    x, y = centres[None, :] - offset[0], centres[:, None] - offset[1]      # the layout's frame
    free = np.zeros((size, size), dtype=bool)
    for room in layout.rooms:
        free |= (x >= room.x0) & (x <= room.x1) & (y >= room.y0) & (y <= room.y1)
    for solid in (*layout.walls, *layout.obstacles):
        if isinstance(solid, Box):
            free &= ~((np.abs(x - solid.cx) <= solid.hx) & (np.abs(y - solid.cy) <= solid.hy))
        else:
            free &= np.hypot(x - solid.cx, y - solid.cy) > solid.radius
    return np.where(free, 255, 0).astype(np.uint8)


def write_box_mesh(path: Path, boxes: list[tuple[tuple, tuple]], rgb: tuple[float, float, float]) -> None:
    """Closed axis-aligned boxes (low corner, high corner) as one OBJ of one colour (and its MTL)."""
    lines, corners = [f"mtllib {path.stem}.mtl", "o shape", "usemtl colour"], 0
    for lo, hi in boxes:
        lines += [f"v {hi[0] if k & 1 else lo[0]:.4f} {hi[1] if k & 2 else lo[1]:.4f} {hi[2] if k & 4 else lo[2]:.4f}"
                  for k in range(8)]
        for q in ((0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)):  # outward
            lines += [f"f {corners + q[0] + 1} {corners + q[1] + 1} {corners + q[2] + 1}",
                      f"f {corners + q[0] + 1} {corners + q[2] + 1} {corners + q[3] + 1}"]
        corners += 8
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".mtl").write_text("newmtl colour\nKd {:.3f} {:.3f} {:.3f}\n".format(*rgb))


def one_link_urdf(name: str, visual: str, collisions: list[str]) -> str:
    """A URDF of one link: a visual mesh, and collision meshes (iGibson's renderer draws a link's
    visual mesh only where the link has a collision mesh; PyBullet takes each one's convex hull)."""
    collision = "".join(f'<collision><geometry><mesh filename="{c}"/></geometry></collision>' for c in collisions)
    return (f'<?xml version="1.0"?>\n<robot name="{name}"><link name="base_link">'
            '<inertial><mass value="1"/><inertia ixx="1" ixy="0" ixz="0" iyy="1" iyz="0" izz="1"/></inertial>'
            f'<visual><geometry><mesh filename="{visual}"/></geometry></visual>{collision}</link></robot>\n')


def write_interactive_standin(root: Path, scene_id: str, layout: Layout) -> Path:
    """`root/ig_dataset/` with `layout` as an interactive scene, laid out as iGibson's: VERSION,
    metadata/categories.txt, scenes/<id>/urdf/<id>_best.urdf placing the building structures
    (urdf/<id>_<walls|floors|ceilings>.urdf, meshes under the scene) and one object of category
    `box` per obstacle (objects/box/unit/, a unit cube scaled to the obstacle's bounding box), and
    scenes/<id>/layout/: the free-floor traversability image and the (empty) room maps."""
    dataset = root / "ig_dataset"
    (dataset / "metadata").mkdir(parents=True, exist_ok=True)
    (dataset / "VERSION").write_text(ia.ASSETS_VERSION)
    (dataset / "metadata" / "categories.txt").write_text("walls\nfloors\nceilings\nbox\n")
    scene = dataset / "scenes" / scene_id
    dx, dy = ia.scene_offset(layout)
    b, h = layout.bounds, layout.wall_height
    slab = ((b.x0 + dx - 0.5, b.y0 + dy - 0.5), (b.x1 + dx + 0.5, b.y1 + dy + 0.5))
    structures = {
        "walls": ([((w.cx + dx - w.hx, w.cy + dy - w.hy, 0.0), (w.cx + dx + w.hx, w.cy + dy + w.hy, w.height))
                   for w in layout.walls], (0.8, 0.75, 0.6)),
        "floors": ([((*slab[0], -0.1), (*slab[1], 0.0))], (0.45, 0.3, 0.2)),
        "ceilings": ([((*slab[0], h), (*slab[1], h + 0.1))], (0.9, 0.9, 0.9)),
    }
    links = ['<link name="world"/>']
    for category, (boxes, rgb) in structures.items():
        write_box_mesh(scene / "shape" / "visual" / f"{category}.obj", boxes, rgb)
        parts = [f"shape/collision/{category}_{k}.obj" for k in range(len(boxes))]
        for part, box in zip(parts, boxes):
            write_box_mesh(scene / part, [box], rgb)
        (scene / "urdf").mkdir(parents=True, exist_ok=True)
        (scene / "urdf" / f"{scene_id}_{category}.urdf").write_text(
            one_link_urdf(category, f"shape/visual/{category}.obj", parts))
        links += [f'<link category="{category}" model="{scene_id}" name="{category}"/>',
                  f'<joint name="j_{category}" type="fixed"><origin xyz="0 0 0" rpy="0 0 0"/>'
                  f'<child link="{category}"/><parent link="world"/></joint>']
    model = dataset / "objects" / "box" / "unit"
    write_box_mesh(model / "shape" / "box.obj", [((-0.5, -0.5, -0.5), (0.5, 0.5, 0.5))], (0.2, 0.4, 0.8))
    (model / "unit.urdf").write_text(one_link_urdf("unit", "shape/box.obj", ["shape/box.obj"]))
    (model / "misc").mkdir(exist_ok=True)
    (model / "misc" / "bbox.json").write_text('{"min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5]}')
    for k, o in enumerate(layout.obstacles):
        sx, sy = (2 * o.hx, 2 * o.hy) if isinstance(o, Box) else (2 * o.radius, 2 * o.radius)
        links += [f'<link category="box" model="unit" name="box_{k}" bounding_box="{sx:.4f} {sy:.4f} {o.height:.4f}"/>',
                  f'<joint name="j_box_{k}" type="fixed"><origin xyz="{o.cx + dx:.4f} {o.cy + dy:.4f} '
                  f'{o.height / 2:.4f}" rpy="0 0 0"/><child link="box_{k}"/><parent link="world"/></joint>']
    (scene / "urdf" / f"{scene_id}_best.urdf").write_text(
        '<?xml version="1.0"?>\n<robot name="igibson_scene">\n' + "\n".join(links) + "\n</robot>\n")
    (scene / "layout").mkdir()
    image = free_floor_image(layout, (dx, dy))
    Image.fromarray(image, "L").save(scene / "layout" / "floor_trav_0.png")
    for name in ("floor_insseg_0.png", "floor_semseg_0.png"):          # no rooms annotated
        Image.fromarray(np.zeros_like(image), "L").save(scene / "layout" / name)
    return scene


def write_standin(root: Path, seeds: tuple[int, ...] = (3, 5, 7)) -> dict[str, Layout]:
    """`root` laid out as iGibson's data directory: assets/, g_dataset/<SCENE_IDS[k]>/ for the
    layout of seeds[k] and ig_dataset/scenes/<INTERACTIVE_ID>/ for the last seed's; returns each
    scene's layout (in the layout's frame: iGibson's = it + `scene_offset(layout)`)."""
    ia.write_assets(root, RobotSpec())
    layouts = {}
    for scene_id, seed in zip((*SCENE_IDS, INTERACTIVE_ID), seeds):
        layout, grid = generate_layout(CONFIG, np.random.default_rng(seed))
        layouts[scene_id] = layout
        if scene_id == INTERACTIVE_ID:
            write_interactive_standin(root, scene_id, layout)
            continue
        scene_dir = ia.write_scene(layout, root / "g_dataset", scene_id, "train", seed=seed, traversability=grid)
        Image.fromarray(free_floor_image(layout, ia.scene_offset(layout)), "L").save(scene_dir / "floor_trav_0.png")
        (scene_dir / "scene.json").unlink()       # no Gibson scene has one: nothing may read it
    return layouts


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, dict[str, Layout]]:
    root = tmp_path_factory.mktemp("igibson_data")
    return root, write_standin(root)


# --------------------------------------------------------------------------------------------
# Without iGibson


def test_missing_or_incomplete_data_fails_in_one_line_naming_the_path(tmp_path: Path, standin) -> None:
    def error(root: Path, scenes=SCENE_IDS[:1]) -> str:
        with pytest.raises(idata.IGibsonDataError) as caught:
            idata.find_igibson_data(root, scenes)
        message = str(caught.value)
        assert "\n" not in message
        return message

    assert error(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'} not found: {idata.DATA_HINT}"
    data = tmp_path / "data"
    data.mkdir()
    assert error(data).startswith(f"{data / 'assets' / 'VERSION'} not found: ")
    ia.write_assets(data, RobotSpec())
    (data / "assets" / ia.ROBOT_URDF).unlink()
    assert error(data) == f"{data / 'assets' / 'models/turtlebot/turtlebot.urdf'} not found: {idata.DATA_HINT}"
    ia.write_assets(data, RobotSpec())
    (data / "assets" / "VERSION").write_text("1.0.0")
    assert "[2.0.6, 2.2.3)" in error(data)
    ia.write_assets(data, RobotSpec())
    assert error(data).startswith(f"scene 'Standin_0' not found: neither {data / 'ig_dataset/scenes/Standin_0'} "
                                  f"nor {data / 'g_dataset/Standin_0'} exists")
    assert error(data, ()).startswith("no scene given")
    shutil.copytree(standin[0] / "g_dataset" / "Standin_0", data / "g_dataset" / "Standin_0")
    (data / "g_dataset" / "Standin_0" / "floors.txt").unlink()
    assert error(data) == f"{data / 'g_dataset/Standin_0/floors.txt'} not found: {idata.DATA_HINT}"
    # An interactive scene is found under ig_dataset/scenes/ and needs that dataset's files.
    (data / "ig_dataset" / "scenes" / "Rs_int" / "layout").mkdir(parents=True)
    assert error(data, ("Rs_int",)) == f"{data / 'ig_dataset/VERSION'} not found: {idata.DATA_HINT}"
    (data / "ig_dataset" / "VERSION").write_text("2.2.2")
    (data / "ig_dataset" / "metadata").mkdir()
    (data / "ig_dataset" / "metadata" / "categories.txt").write_text("walls\nfloors\nceilings\n")
    assert error(data, ("Rs_int",)) == f"{data / 'ig_dataset/scenes/Rs_int/urdf/Rs_int_best.urdf'} not found: " \
                                       f"{idata.DATA_HINT}"

    # The environment, the factory's check and the programs say the same before anything starts.
    missing = tmp_path / "nowhere"
    for fail in (lambda: make_env("igibson", igibson_data=missing, igibson_scenes=["Rs_int"]),
                 lambda: check_env_available("igibson", igibson_data=missing, igibson_scenes=["Rs_int"])):
        with pytest.raises(idata.IGibsonDataError, match=f"^{missing} not found: "):
            fail()


def test_the_programs_take_the_switch_and_refuse_incomplete_data(tmp_path: Path, capsys) -> None:
    from training import evaluate, train_igibson

    args = ["--config", str(REPO_ROOT / "config/train/smoke.yaml"), "--run-dir", str(tmp_path / "run")]
    assert train_igibson.main(args + ["--env", "igibson", "--igibson-data", str(tmp_path), "--igibson-scenes",
                                      "Rs_int"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'assets' / 'VERSION'} not found: {idata.DATA_HINT}"]
    assert train_igibson.main(args + ["--igibson-data", str(tmp_path)]) == 2       # --env embedded
    assert capsys.readouterr().err.strip() == "error: --igibson-data goes with --env igibson"
    bundle = str(REPO_ROOT / "models/recore_pointnav")
    assert evaluate.main([bundle, "--env", "igibson", "--igibson-scenes", "Rs_int"]) == 2
    assert capsys.readouterr().err.strip() == "error: --igibson-scenes goes with --igibson-data"
    parsed = evaluate.parse_args([bundle, "--env", "igibson", "--igibson-data", "data",
                                  "--igibson-scenes", "Rs_int", "Beechwood_0_int"])
    assert idata.env_kwargs_from_args(parsed) == {"igibson_data": str(Path("data").resolve()),
                                                  "igibson_scenes": ("Rs_int", "Beechwood_0_int")}


def test_a_resume_keeps_the_runs_scenes(tmp_path: Path, capsys) -> None:
    """Refused before anything loads: the run's config names its simulator and scenes."""
    from training import train_igibson
    from training.checkpoint import checkpoint_path
    from training.config import config_to_dict, load_config
    from training.run_log import CONFIG_FILE, write_config

    run = tmp_path / "run"
    cfg = load_config(REPO_ROOT / "config/train/smoke.yaml", ["env.name=igibson", f"env.igibson_data={tmp_path}",
                                                             "env.igibson_scenes=[Rs_int]"])
    run.mkdir()
    write_config(run, config_to_dict(cfg))
    checkpoint_path(run).write_bytes(b"")      # a run exists; nothing reads it before the refusal
    assert train_igibson.main(["--run-dir", str(run), "--resume", "--igibson-data", str(tmp_path),
                               "--igibson-scenes", "Beechwood_0_int"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {run} trains on Rs_int of {tmp_path}; --igibson-data/--igibson-scenes would change them "
        "mid-run (start a new run instead)")
    assert train_igibson.main(["--run-dir", str(run), "--resume", "--env", "embedded"]) == 2
    assert "trains in igibson; --env embedded" in capsys.readouterr().err
    assert (run / CONFIG_FILE).is_file()


def test_the_run_config_carries_the_data_to_training_and_evaluation() -> None:
    from training.config import ConfigError, load_config
    from training.evaluation.report import environment_label
    from training.export_onnx import training_env_label

    smoke = REPO_ROOT / "config/train/smoke.yaml"
    cfg = load_config(smoke, ["env.igibson_data=/data", "env.igibson_scenes=[Rs_int]"])
    with pytest.raises(ConfigError, match="env.igibson_data goes with env.name igibson"):
        cfg.env.env_kwargs()
    cfg.env.name = "igibson"
    assert cfg.env.env_kwargs() == {"igibson_data": "/data", "igibson_scenes": ("Rs_int",)}
    assert load_config(smoke).env.env_kwargs() == {}
    with pytest.raises(ConfigError, match="igibson_scenes goes with env.igibson_data"):
        load_config(smoke, ["env.igibson_scenes=[Rs_int]"])
    # Results in iGibson's scenes are named apart from those in this project's.
    assert environment_label("igibson") == "igibson"
    assert environment_label("igibson", ("Rs_int", "Wainscott_0_int")) == "igibson-Rs_int+Wainscott_0_int"
    assert training_env_label({"env": "igibson", "config": {"env": {"igibson_scenes": ["Rs_int"]}}}) == "igibson-Rs_int"
    assert training_env_label({"env": "igibson", "config": {"env": {}}}) == "igibson"


def test_the_task_map_is_the_scenes_own_image_at_the_tasks_resolution(standin) -> None:
    """Read with iGibson's map-to-world convention and inflated by the robot, the free-floor image
    gives the map the embedded simulator makes of the same layout (shifted into iGibson's frame)."""
    root, layouts = standin
    data = idata.find_igibson_data(root, (*SCENE_IDS, INTERACTIVE_ID))
    assert [scene.kind for scene in data.scenes] == [idata.STATIC, idata.STATIC, idata.INTERACTIVE]
    assert data.scenes[-1].directory == root / "ig_dataset" / "scenes" / INTERACTIVE_ID
    for scene in data.scenes:
        grid = idata.traversability_map(scene, CONFIG.grid_resolution, CONFIG.inflation_radius)
        assert grid.layout is None and grid.resolution == pytest.approx(CONFIG.grid_resolution)
        layout = layouts[scene.scene_id]
        offset = np.asarray(ia.scene_offset(layout))
        embedded = TraversabilityMap(layout, CONFIG)

        def centres(g: TraversabilityMap, cells: np.ndarray) -> np.ndarray:
            i, j = np.nonzero(cells)
            return np.stack([g.origin[0] + (j + 0.5) * g.resolution, g.origin[1] + (i + 0.5) * g.resolution], 1)

        # Cell for cell within a cell and a half. (The stand-in's layouts have no gap within a
        # cell of the robot's width, which the embedded map, growing solids by half a cell, would
        # close and the image leave open.)
        ours = centres(grid, grid.reachable)
        theirs = centres(embedded, embedded.reachable) + offset
        assert cKDTree(theirs).query(ours)[0].max() <= 1.5 * CONFIG.grid_resolution
        assert cKDTree(ours).query(theirs)[0].max() <= 1.5 * CONFIG.grid_resolution
        # Every reachable cell keeps the robot's radius from the image's blocked pixels.
        image = np.asarray(Image.open(scene.trav_map))
        n = image.shape[0]
        rows, cols = np.nonzero(image != 255)
        blocked = np.stack([(cols + 0.5 - n / 2) * 0.01, (rows + 0.5 - n / 2) * 0.01], 1)
        assert cKDTree(blocked).query(ours)[0].min() >= CONFIG.robot_radius
        assert scene.map_extent() == pytest.approx(n * 0.01 * math.sqrt(2))


def test_seg_rules() -> None:
    class_ids = {"agent": 1, "walls": 10, "floors": 11, "ceilings": 12, "carpet": 13, "chair": 14, "door": 15}
    semantic = np.array([[0, 1, 10, 11], [12, 13, 14, 15], [2, 3, 300, 11]])
    assert idata.classes_from_semantics(semantic, class_ids).tolist() == [
        [OTHER, OTHER, WALL, FLOOR], [OTHER, FLOOR, OBSTACLE, OBSTACLE], [OBSTACLE, OBSTACLE, OBSTACLE, FLOOR]]
    assert idata.classes_from_semantics(semantic, class_ids).dtype == np.uint8
    height = np.array([-0.02, 0.04, 0.06, 1.0, 1.99, 2.0, 2.6, 1.0])
    surface = np.array([True] * 7 + [False])
    assert idata.classes_from_height(height, surface).tolist() == [FLOOR, FLOOR, WALL, WALL, WALL, OTHER, OTHER, OTHER]
    assert task.SEG_CLASSES == ("floor", "wall", "obstacle", "other")


def test_scene_config_is_igibsons_scene_and_turtlebot(tmp_path: Path, standin) -> None:
    root, _ = standin
    static = idata.find_igibson_data(root, SCENE_IDS[:1]).scenes[0]
    config = idata.scene_config(static, 90.0)
    assert (config["scene"], config["scene_id"]) == ("gibson", "Standin_0")
    assert config["robot"]["name"] == "Turtlebot" and config["collision_ignore_link_a_ids"] == []
    assert "seg" not in config["output"] and config["trav_map_type"] == "with_obj"
    interactive = idata.DataScene("Rs_int", idata.INTERACTIVE, tmp_path / "ig_dataset/scenes/Rs_int")
    config = idata.scene_config(interactive, 90.0)
    assert config["scene"] == "igibson" and "seg" in config["output"] and config["should_open_all_doors"]
    assert interactive.trav_map == tmp_path / "ig_dataset/scenes/Rs_int/layout/floor_trav_0.png"
    assert idata.IGibsonData(tmp_path, ()).environment() == {
        "GIBSON_ASSETS_PATH": str(tmp_path / "assets"), "GIBSON_DATASET_PATH": str(tmp_path / "g_dataset"),
        "IGIBSON_DATASET_PATH": str(tmp_path / "ig_dataset")}


# --------------------------------------------------------------------------------------------
# With iGibson


def _igibson_missing() -> str | None:
    from training.environments.igibson import IGibsonMissing, igibson_python
    try:
        igibson_python()
    except IGibsonMissing as err:
        return str(err)
    return None


IGIBSON_MISSING = _igibson_missing()
needs_igibson = pytest.mark.skipif(IGIBSON_MISSING is not None, reason=IGIBSON_MISSING or "")


@pytest.fixture(scope="module")
def env(standin):
    root, _ = standin
    env = make_env("igibson", split="train", image_size=64, seed=3, igibson_data=root,
                   igibson_scenes=(SCENE_IDS[0], INTERACTIVE_ID))
    yield env
    env.close()


def reset_in(env, scene_id: str, seeds=range(100, 200)) -> tuple[int, dict, dict]:
    """The first seed whose episode is in `scene_id`, with its observation and info."""
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        if env._scene.worker_scene["config"]["scene_id"] == scene_id:
            return seed, obs, info
    raise AssertionError(f"no seed drew {scene_id}")


@needs_igibson
def test_igibsons_data_runs_behind_the_environment_contract(env, standin) -> None:
    root, _ = standin
    images = {SCENE_IDS[0]: root / "g_dataset" / SCENE_IDS[0] / "floor_trav_0.png",
              INTERACTIVE_ID: root / "ig_dataset" / "scenes" / INTERACTIVE_ID / "layout" / "floor_trav_0.png"}
    images = {scene_id: np.asarray(Image.open(path)) for scene_id, path in images.items()}
    seen = set()
    for seed in (3, 4, 5, 6):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        assert obs["rgb"].shape == (64, 64, 3) and obs["rgb"].dtype == np.uint8
        assert obs["depth"].shape == (64, 64, 1) and obs["depth"].dtype == np.float32
        assert 0.0 < obs["depth"].min() and obs["depth"].max() <= task.DEPTH_MAX
        assert obs["seg"].shape == (64, 64) and obs["seg"].dtype == np.uint8 and obs["seg"].max() <= OTHER
        assert obs["goal"].shape == (3,) and obs["goal"].dtype == np.float32
        assert obs["goal"][0] == pytest.approx(math.dist(info["robot_pose"][:2], info["goal_position"]), abs=1e-3)
        scene_id = env._scene.worker_scene["config"]["scene_id"]
        seen.add(scene_id)
        if scene_id == SCENE_IDS[0]:     # a static scene by height: no obstacle class
            assert OBSTACLE not in obs["seg"]
        assert (obs["seg"][48:] == FLOOR).any() and (obs["seg"] == WALL).any()
        # Start and goal on free cells of the scene's own image, and the robot landed at the start.
        image = images[scene_id]
        n = image.shape[0]
        for x, y in (info["robot_pose"][:2], info["goal_position"]):
            assert image[int(y / 0.01 + n / 2), int(x / 0.01 + n / 2)] == 255
            assert env.traversability.is_reachable(x, y)
        assert np.isfinite(info["expert_action"]).all()
        assert task.MIN_GOAL_DISTANCE <= info["shortest_path_length"] <= task.MAX_GOAL_DISTANCE + 0.2
        obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], np.float32))
        assert np.isfinite(reward) and obs["depth"].dtype == np.float32
    assert seen == {SCENE_IDS[0], INTERACTIVE_ID}     # both drawn: the worker switched kinds of scene


@needs_igibson
@pytest.mark.parametrize("scene_id", [SCENE_IDS[0], INTERACTIVE_ID])
def test_the_camera_sees_what_the_embedded_simulator_sees_in_the_same_layout(env, standin, scene_id) -> None:
    """Same pose in the same layout: depth agrees, and so do the classes (an interactive scene's
    by its objects' categories; a static scene's floor by height)."""
    _, layouts = standin
    layout = layouts[scene_id]
    offset = np.asarray(ia.scene_offset(layout))
    embedded = make_env("embedded", split="train", image_size=64, seed=0, fixed_layout=layout)
    try:
        for seeds in (range(100, 150), range(150, 200)):
            _, obs, info = reset_in(env, scene_id, seeds)
            x, y, yaw = info["robot_pose"]
            start, goal = (x - offset[0], y - offset[1], yaw), tuple(info["goal_position"] - offset)
            try:
                theirs, _ = embedded.reset(options={"start": start, "goal": goal})
            except ValueError:          # a cell at the edge of one map and not the other's: next episode
                continue
            break
        near = (obs["depth"] < 3.0) & (theirs["depth"] < 3.0)
        assert near.mean() > 0.2
        assert np.median(np.abs(obs["depth"] - theirs["depth"])[near]) < 0.1
        ours, seg = obs["seg"], theirs["seg"]
        if scene_id == INTERACTIVE_ID:
            assert (ours == seg).mean() > 0.85
        else:
            assert (ours[seg == FLOOR] == FLOOR).mean() > 0.9
            assert (ours[seg == WALL] == WALL).mean() > 0.8
    finally:
        embedded.close()


@needs_igibson
@pytest.mark.parametrize("scene_id", [SCENE_IDS[0], INTERACTIVE_ID])
def test_the_expert_reaches_the_goal_in_igibsons_data(env, scene_id) -> None:
    _, obs, info = reset_in(env, scene_id)
    grid = env.traversability
    clearance = ndimage.distance_transform_edt(~grid.occupied) * grid.resolution   # to the map's solids
    collided_at = []
    for _ in range(400):
        obs, reward, terminated, truncated, info = env.step(info["expert_action"])
        if info["collision"]:
            collided_at.append(float(clearance[grid.cell_of(*info["robot_pose"][:2])]))
        if terminated or truncated:
            break
    assert terminated and info["success"]
    assert math.dist(info["robot_pose"][:2], info["goal_position"]) < env.task.success_radius
    assert 0.5 < info["spl"] <= 1.0
    # Standing on the floor is no collision: a collision is the robot (0.18 m) at a solid, where
    # the expert grazes one.
    assert all(distance < 0.3 for distance in collided_at), collided_at


@needs_igibson
def test_walls_are_collisions_and_stop_the_robot(env) -> None:
    _, obs, info = reset_in(env, INTERACTIVE_ID)
    for _ in range(80):                 # full speed ahead: some wall or obstacle is met
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        if info["collisions"] >= 3:
            break
    assert info["collisions"] >= 3
