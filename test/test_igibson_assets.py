"""The project-made iGibson asset set (training/environments/igibson_assets.py), without iGibson.

The meshes are closed with the right bounds and volumes; the robot URDF has the embedded robot's
body and camera and the joints iGibson's Turtlebot class drives; the differential-drive mapping
gives the task's speeds; the traversability image, read back the way iGibson 2.2.2's
`IndoorScene.load_trav_map` reads it (re-implemented below), marks free what the embedded
`TraversabilityMap` marks reachable, and geodesics on iGibson's graph agree with the embedded ones.
"""

import colorsys
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from recore_nav import task
from recore_nav.sim.appearance import SPLIT_RANGES, sample_appearance
from recore_nav.sim.layout import (
    Box,
    Cylinder,
    Layout,
    LayoutConfig,
    Rect,
    TraversabilityMap,
    enclosing_walls,
    generate_layout,
)
from recore_nav.sim.scene import RobotSpec
from training.environments import igibson_assets as ia

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG = LayoutConfig()


# --------------------------------------------------------------------------------------------
# Reading the files back


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, str | None]]:
    """Vertices (V, 3), triangles (F, 3) 0-based, and each object's material (one at most)."""
    vertices, faces, objects, current = [], [], {}, None
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(v) for v in parts[1:4]])
        elif parts[0] == "f":
            assert len(parts) == 4, "triangles only"
            faces.append([int(p.split("/")[0]) - 1 for p in parts[1:]])
            assert all(len(p.split("/")) == 3 for p in parts[1:]), "every corner has a texture coordinate and a normal"
        elif parts[0] == "o":
            current = parts[1]
            assert current not in objects
            objects[current] = None
        elif parts[0] == "usemtl":
            assert objects[current] is None, "iGibson's renderer takes one material per object"
            objects[current] = parts[1]
    return np.array(vertices), np.array(faces), objects


def assert_closed(vertices: np.ndarray, faces: np.ndarray) -> None:
    """Every edge is shared by exactly two triangles that run it in opposite directions."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = {tuple(e) for e in edges.tolist()}
    assert len(directed) == len(edges), "an edge runs twice the same way: inconsistent orientation"
    assert all((b, a) in directed for a, b in directed), "an edge without its twin: the mesh is open"
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    assert np.linalg.norm(np.cross(b - a, c - a), axis=1).min() > 1e-9, "degenerate triangle"


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def igibson_trav_graph(png: Path, resolution: float, erosion: int) -> tuple[np.ndarray, np.ndarray]:
    """iGibson 2.2.2's reading of a traversability image (indoor_scene.py: load_trav_map,
    build_trav_graph, map_to_world): the kept cells (bool (S, S), the largest 8-connected
    component) and their points (K, 2) in iGibson's frame, (x, y) = ((j, i) - S / 2) * resolution."""
    trav = np.array(Image.open(png))
    height, width = trav.shape
    assert height == width, "trav map is not a square"
    size = int(height * 0.01 / resolution)
    trav = cv2.resize(trav, (size, size))
    if erosion != 0:
        trav = cv2.erode(trav, np.ones((erosion, erosion)))
    trav[trav < 255] = 0
    labels, _ = ndimage.label(trav > 0, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    kept = labels == int(np.argmax(sizes))
    i, j = np.nonzero(kept)
    return kept, np.stack([(j - size / 2.0) * resolution, (i - size / 2.0) * resolution], axis=1)


def graph_distances(kept: np.ndarray, resolution: float, source: int) -> np.ndarray:
    """Shortest-path lengths (m) on iGibson's 8-connected graph of kept cells (edge length: the
    step's length), from the `source`-th kept cell to every kept cell (np.nonzero order)."""
    index = np.full(kept.shape, -1)
    index[kept] = np.arange(int(kept.sum()))
    h, w = kept.shape
    rows, cols, lengths = [], [], []
    for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = index[0:h - di, max(0, -dj):w - max(0, dj)]
        b = index[di:h, max(0, dj):w - max(0, -dj)]
        ok = (a >= 0) & (b >= 0)
        rows.append(a[ok])
        cols.append(b[ok])
        lengths.append(np.full(int(ok.sum()), math.hypot(di, dj) * resolution))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(lengths)
    n = int(kept.sum())
    graph = csr_matrix((np.concatenate([v, v]), (np.concatenate([r, c]), np.concatenate([c, r]))), shape=(n, n))
    return dijkstra(graph, indices=source)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three generated layouts (seed 3 has narrow gaps between obstacles and walls), their
    embedded maps and written scenes."""
    root = tmp_path_factory.mktemp("dataset")
    out = []
    for seed in (0, 3, 11):
        layout, grid = generate_layout(CONFIG, np.random.default_rng(seed))
        scene_dir = ia.write_scene(layout, root, f"recore_{seed}", "train", seed=seed, traversability=grid)
        out.append((layout, grid, scene_dir))
    return out


def room_with_obstacles() -> Layout:
    room = Rect(0.0, 0.0, 4.0, 3.0)
    return Layout(rooms=(room,), walls=tuple(enclosing_walls(room)),
                  obstacles=(Box(3.0, 2.2, 0.4, 0.3, 0.8), Cylinder(1.0, 0.9, 0.25, 1.2)))


# --------------------------------------------------------------------------------------------
# Assets


def test_assets_version_and_unit_primitives(tmp_path):
    assets = ia.write_assets(tmp_path, RobotSpec())
    version = tuple(int(v) for v in (assets / "VERSION").read_text().strip().split("."))
    assert (2, 0, 6) <= version < (2, 2, 3)       # igibson/__init__.py's accepted range
    primitives = assets / ia.PRIMITIVES_DIR
    for name, volume in (("cube.obj", 1.0), ("cylinder16.obj", 16 / 2 * math.sin(2 * math.pi / 16) * 0.25),
                         ("sphere8.obj", None)):
        vertices, faces, objects = read_obj(primitives / name)
        assert_closed(vertices, faces)
        assert list(objects.values()) == [None]     # one shape, coloured by the URDF's rgba
        assert vertices.min(axis=0) == pytest.approx([-0.5] * 3) and vertices.max(axis=0) == pytest.approx([0.5] * 3)
        if volume is not None:
            assert signed_volume(vertices, faces) == pytest.approx(volume, rel=1e-4)
        else:
            assert np.linalg.norm(vertices, axis=1) == pytest.approx(0.5, abs=1e-5)     # 5 decimals
            assert 0.75 * (math.pi / 6) < signed_volume(vertices, faces) < math.pi / 6
    vertices, _, _ = read_obj(primitives / "cylinder16.obj")
    radii = np.hypot(vertices[:, 0], vertices[:, 1])
    assert radii[radii > 0] == pytest.approx(0.5, abs=1e-5)      # its axis is z


def test_robot_urdf_is_the_embedded_robot_on_turtlebots_joints(tmp_path):
    robot = RobotSpec()
    urdf = ET.parse(ia.write_assets(tmp_path, robot) / ia.ROBOT_URDF).getroot()
    links = {link.get("name"): link for link in urdf.findall("link")}
    joints = urdf.findall("joint")
    # PyBullet numbers links by joint order; iGibson's joints are the non-fixed ones in that order,
    # and Turtlebot.base_control_idx [1, 0] means joint 0 is the right wheel, joint 1 the left.
    assert [j.get("name") for j in joints if j.get("type") != "fixed"] == ["wheel_right_joint", "wheel_left_joint"]
    contact_links = [k for k, j in enumerate(joints) if j.find("child").get("link") != "eyes"]
    assert tuple(contact_links) == ia.FLOOR_CONTACT_LINKS

    def xyz(element, attribute="xyz"):
        origin = element.find("origin")
        return np.array([float(v) for v in origin.get(attribute, "0 0 0").split()]) if origin is not None else np.zeros(3)

    fastest = (task.MAX_LINEAR_SPEED + task.MAX_ANGULAR_SPEED * ia.AXLE_LENGTH / 2) / ia.WHEEL_RADIUS
    for joint, side in zip(joints[:2], (-1, 1)):
        assert joint.get("type") == "continuous" and joint.find("axis").get("xyz") == "0 1 0"
        assert xyz(joint) == pytest.approx([0.0, side * ia.AXLE_LENGTH / 2, ia.WHEEL_RADIUS])
        assert fastest <= float(joint.find("limit").get("velocity")) < fastest + 0.02
        wheel = links[joint.find("child").get("link")].find("collision/geometry/cylinder")
        assert float(wheel.get("radius")) == ia.WHEEL_RADIUS

    # Wheels and casters touch the ground plane (z = 0 in the base frame); the body does not.
    def lowest(link_name, joint_z=0.0):
        """The collision shape's lowest point: a sphere's or a lying cylinder's (a wheel's) radius
        below its centre, a standing cylinder's half length."""
        shape = links[link_name].find("collision")
        geometry = shape.find("geometry")[0]
        standing = geometry.tag == "cylinder" and xyz(shape, "rpy")[0] == 0
        reach = float(geometry.get("length")) / 2 if standing else float(geometry.get("radius"))
        return joint_z + xyz(shape)[2] - reach

    for k in ia.FLOOR_CONTACT_LINKS:
        assert lowest(joints[k].find("child").get("link"), xyz(joints[k])[2]) == pytest.approx(0.0, abs=1e-9)
    body = links["base_link"].find("collision")
    cylinder = body.find("geometry/cylinder")
    assert float(cylinder.get("radius")) == robot.radius
    assert 0.0 < lowest("base_link")
    top = xyz(body)[2] + float(cylinder.get("length")) / 2
    assert top + ia.FLOOR_PLANE_ELEVATION == pytest.approx(0.02 + robot.body_height)   # scene.py's body
    eyes = next(j for j in joints if j.find("child").get("link") == "eyes")
    assert eyes.get("type") == "fixed" and xyz(eyes, "rpy") == pytest.approx([0, 0, 0])
    assert xyz(eyes) + [0, 0, ia.FLOOR_PLANE_ELEVATION] == pytest.approx([0.0, 0.0, robot.camera_height])
    mass = sum(float(link.find("inertial/mass").get("value")) for link in links.values())
    assert mass == pytest.approx(robot.mass)


def test_differential_drive_action_one_is_the_task_speed():
    """iGibson's DifferentialDriveController with `config_overrides`'s output limits and the URDF's
    wheel limit (dd_controller.py, controller_base.py): scale, wheel speeds, clip, and back."""
    config = ia.config_overrides("x", RobotSpec())
    base = config["robot"]["controller_config"]["base"]
    assert config["robot"]["name"] == "Turtlebot" and base["name"] == "DifferentialDriveController"
    low, high = (np.array(v) for v in base["command_output_limits"])
    limit = ia.wheel_velocity_limit()
    half_axle = ia.AXLE_LENGTH / 2
    for action in np.stack(np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9)), -1).reshape(-1, 2):
        v, w = (action + 1) / 2 * (high - low) + low
        wheels = np.clip([(v - w * half_axle) / ia.WHEEL_RADIUS, (v + w * half_axle) / ia.WHEEL_RADIUS], -limit, limit)
        linear = (wheels[0] + wheels[1]) / 2 * ia.WHEEL_RADIUS
        angular = (wheels[1] - wheels[0]) * ia.WHEEL_RADIUS / ia.AXLE_LENGTH
        expected = action * np.array([task.MAX_LINEAR_SPEED, task.MAX_ANGULAR_SPEED])
        assert np.allclose([linear, angular], expected, atol=1e-9), (action, linear, angular)
    assert config["collision_ignore_link_a_ids"] == list(ia.FLOOR_CONTACT_LINKS)
    assert config["trav_map_erosion"] == 0 and config["trav_map_resolution"] == ia.TRAV_MAP_RESOLUTION
    assert config["vertical_fov"] == RobotSpec().camera_fovy_deg


# --------------------------------------------------------------------------------------------
# Scenes


def test_scene_mesh_is_closed_with_the_layouts_solids(scenes):
    for layout, _, scene_dir in scenes:
        vertices, faces, objects = read_obj(scene_dir / "mesh_z_up.obj")
        assert_closed(vertices, faces)
        sides = ia._PRISM_SIDES
        expected = sum(4 * w.hx * w.hy * w.height for w in layout.walls)
        expected += sum(4 * o.hx * o.hy * o.height if isinstance(o, Box)
                        else sides * o.radius ** 2 * math.tan(math.pi / sides) * o.height for o in layout.obstacles)
        b, m = layout.bounds, ia._FLOOR_MARGIN
        expected += 2 * (b.x1 - b.x0 + 2 * m) * (b.y1 - b.y0 + 2 * m) * ia._SLAB    # floor and ceiling slabs
        assert signed_volume(vertices, faces) == pytest.approx(expected, rel=1e-5)
        dx, dy = ia.scene_offset(layout)
        assert vertices.min(axis=0) == pytest.approx([b.x0 + dx - m, b.y0 + dy - m, -ia._SLAB], abs=1e-4)
        assert vertices.max(axis=0) == pytest.approx([b.x1 + dx + m, b.y1 + dy + m, layout.wall_height + ia._SLAB],
                                                     abs=1e-4)
        # Each object's material is defined, textured by an existing RGB image.
        mtl = (scene_dir / "mesh_z_up.mtl").read_text()
        for name, material in objects.items():
            assert material == name and f"newmtl {name}\n" in mtl and f"map_Kd {name}.png" in mtl
            texture = Image.open(scene_dir / f"{name}.png")
            assert texture.mode == "RGB" and texture.size == (ia._TEXTURE_SIZE, ia._TEXTURE_SIZE)
        assert {name.rsplit("_", 1)[0] for name in objects} >= {"floor", "ceiling", "wall"}
        assert [float(v) for v in (scene_dir / "floors.txt").read_text().split()] == [0.0]


def test_scene_offset_centres_the_layout(scenes):
    for layout, _, scene_dir in scenes:
        dx, dy = ia.scene_offset(layout)
        b = layout.bounds
        assert abs((b.x0 + b.x1) / 2 + dx) <= ia.OFFSET_STEP / 2 + 1e-9
        assert abs((b.y0 + b.y1) / 2 + dy) <= ia.OFFSET_STEP / 2 + 1e-9
        assert dx / ia.OFFSET_STEP == pytest.approx(round(dx / ia.OFFSET_STEP), abs=1e-9)
        info = ia.read_scene_info(scene_dir)
        assert info.offset == (dx, dy)
        assert info.to_layout(info.to_igibson([[1.25, -3.5]])) == pytest.approx(np.array([[1.25, -3.5]]))


def test_traversability_image_read_as_igibson_marks_the_embedded_reachable_cells(scenes):
    for layout, grid, scene_dir in scenes:
        image = np.array(Image.open(scene_dir / "floor_trav_0.png"))
        assert image.dtype == np.uint8 and set(np.unique(image)) <= {0, 255}
        assert image.shape[0] == image.shape[1] and image.shape[0] % 2 == 0
        for resolution in (0.1, 0.05):
            assert int(image.shape[0] * 0.01 / resolution) == round(image.shape[0] * 0.01 / resolution)
        kept, points = igibson_trav_graph(scene_dir / "floor_trav_0.png", ia.TRAV_MAP_RESOLUTION, ia.TRAV_MAP_EROSION)
        points = points - np.asarray(ia.scene_offset(layout))         # into the layout's frame
        rows, cols = np.nonzero(grid.reachable)
        centres = np.stack([grid.origin[0] + (cols + 0.5) * grid.resolution,
                            grid.origin[1] + (rows + 0.5) * grid.resolution], axis=1)
        # Within half an iGibson cell (per axis) either way: every iGibson cell's point has a
        # reachable embedded cell centre that near, and every reachable centre an iGibson point.
        bound = math.hypot(ia.TRAV_MAP_RESOLUTION / 2, ia.TRAV_MAP_RESOLUTION / 2)
        assert cKDTree(centres).query(points)[0].max() <= bound
        assert cKDTree(points).query(centres)[0].max() <= bound
        # Nothing is cut off: iGibson's largest component holds every free cell.
        _, n = ndimage.label(cv2.resize(image, kept.shape[::-1]) == 255, structure=np.ones((3, 3)))
        assert n == 1


def test_traversability_image_orientation_and_centre(tmp_path):
    """Rows grow with y, columns with x, the origin in the middle: the box in the room's upper
    right is blocked where it is, and free where a flipped image would put it."""
    layout = room_with_obstacles()
    scene_dir = ia.write_scene(layout, tmp_path, "room", traversability=TraversabilityMap(layout, CONFIG))
    image = np.array(Image.open(scene_dir / "floor_trav_0.png"))
    dx, dy = ia.scene_offset(layout)
    assert (dx, dy) == (-2.0, -1.5)
    n = image.shape[0]

    def pixel(x, y):        # a layout point's pixel, iGibson's world_to_map at 0.01 m
        return image[int((y + dy) / 0.01 + n / 2), int((x + dx) / 0.01 + n / 2)]

    assert pixel(3.0, 2.2) == 0 and pixel(1.0, 0.9) == 0           # the box, the cylinder
    assert pixel(1.0, 2.2) == 255 and pixel(3.0, 0.8) == 255       # the box mirrored in x, in y
    assert pixel(2.0, 1.5) == 255 and pixel(-0.5, 1.5) == 0        # the room's centre; outside


def test_geodesics_on_igibsons_graph_match_the_embedded_ones(scenes):
    """iGibson's 8-connected graph: straight runs measure what the embedded map measures within a
    cell; any path is at most 8.3% (1 / cos 22.5 deg) + a cell longer and never a cell shorter."""
    res = ia.TRAV_MAP_RESOLUTION
    for layout, grid, scene_dir in scenes:
        kept, points = igibson_trav_graph(scene_dir / "floor_trav_0.png", res, ia.TRAV_MAP_EROSION)
        points = points - np.asarray(ia.scene_offset(layout))
        inside = np.flatnonzero([grid.is_reachable(x, y) for x, y in points])
        rng = np.random.default_rng(0)
        for _ in range(8):
            a, b = rng.choice(inside, 2, replace=False)
            mine = graph_distances(kept, res, a)[b]
            embedded = grid.geodesic_field(*points[b]).distance_at(*points[a])
            assert -res <= mine - embedded <= res + (1 / math.cos(math.pi / 8) - 1) * embedded
        # The longest straight run of free cells in a row: both maps measure its length.
        index = np.full(kept.shape, -1)
        index[kept] = np.arange(int(kept.sum()))
        best = (0, None, None)
        for row in range(kept.shape[0]):
            runs = np.flatnonzero(np.diff(np.concatenate([[0], kept[row].astype(int), [0]])))
            for start, stop in zip(runs[::2], runs[1::2]):
                if stop - start > best[0]:
                    best = (stop - start, index[row, start], index[row, stop - 1])
        _, a, b = best
        straight = float(np.linalg.norm(points[a] - points[b]))
        assert graph_distances(kept, res, a)[b] == pytest.approx(straight, abs=1e-9)
        if grid.is_reachable(*points[a]) and grid.is_reachable(*points[b]):
            assert grid.geodesic_field(*points[b]).distance_at(*points[a]) == pytest.approx(straight, abs=res)


def test_textures_carry_the_splits_appearance(tmp_path):
    layout = room_with_obstacles()
    grid = TraversabilityMap(layout, CONFIG)
    for split in ("train", "ood"):
        appearance = sample_appearance(split, np.random.default_rng(5))
        scene_dir = ia.write_scene(layout, tmp_path, split, split, appearance=appearance, traversability=grid)
        floor = appearance.surfaces["floor"]
        shade = ia._shade((0.0, 0.0, 1.0), appearance)
        pixels = np.array(Image.open(scene_dir / "floor_up.png")).reshape(-1, 3) / 255.0
        if floor.kind != "gradient":
            expected = {tuple(np.round(np.array(c) * shade * 255).astype(int)) for c in (floor.rgb1, floor.rgb2)}
            assert {tuple(p) for p in np.round(pixels * 255).astype(int)} <= expected
        hue = colorsys.rgb_to_hsv(*pixels[0])[0]      # a corner pixel is rgb1 or rgb2 in every kind
        assert any(lo <= hue < hi or abs(hue - lo) < 0.01 or abs(hue - hi) < 0.01
                   for lo, hi in SPLIT_RANGES[split].hue_intervals)


# --------------------------------------------------------------------------------------------
# Segmentation and frames


def test_surface_classes_label_rendered_points(tmp_path):
    layout = room_with_obstacles()
    scene_dir = ia.write_scene(layout, tmp_path, "room", traversability=TraversabilityMap(layout, CONFIG))
    info = ia.read_scene_info(scene_dir)
    floor, wall, obstacle, other = (task.SEG_CLASSES.index(c) for c in ("floor", "wall", "obstacle", "other"))
    points = np.array([
        [1.0, 2.0, 0.0],        # floor
        [0.05, 1.5, 1.0],       # the left wall's inner face
        [3.0, 2.2, 0.8],        # the box's top
        [1.25, 0.9, 0.5],       # the cylinder's side
        [2.0, 1.5, 2.4],        # ceiling
        [2.0, 1.5, 1.0],        # nothing (mid-air): other
    ])
    points[:, :2] = info.to_igibson(points[:, :2])
    assert info.surface_classes(points).tolist() == [floor, wall, obstacle, obstacle, other, other]
    assert info.surface_classes(points.reshape(2, 3, 3)).shape == (2, 3)

    # The camera looking along +y from (1, 1, 0.5) (yaw 90 degrees): 1 m ahead and 0.5 m down is
    # the floor at (1, 2); 0.5 m to the right is +x; a background pixel (0, 0, 0) is the eye.
    eye, yaw = np.array([1.0, 1.0, 0.5]), math.pi / 2
    quaternion = np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])
    pc = np.array([[[0.0, -0.5, -1.0], [0.5, 0.0, -1.0], [0.0, 0.0, 0.0]]])
    world = ia.points_from_camera(pc, eye, quaternion)
    assert world[0] == pytest.approx(np.array([[1.0, 2.0, 0.0], [1.5, 2.0, 0.5], [1.0, 1.0, 0.5]]))


@pytest.mark.parametrize("module", ["igibson_assets", "igibson_data"])
def test_module_imports_without_torch_gymnasium_or_mujoco(module: str):
    """The worker imports it in iGibson's own environment (numpy < 2, no torch, gymnasium or mujoco)."""
    code = ("import sys\n"
            "for name in ('torch', 'gymnasium', 'mujoco', 'cv2', 'scipy'):\n"
            "    sys.modules[name] = None\n"
            f"import training.environments.{module}\n"
            "assert 'recore_nav.sim' not in sys.modules, sorted(sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
