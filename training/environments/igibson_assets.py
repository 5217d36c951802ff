"""The iGibson 2.2.2 asset set this project makes from its own geometry.

iGibson's asset downloads are gone and its scene meshes are licensed, so this module writes what
`GIBSON_ASSETS_PATH` and `GIBSON_DATASET_PATH` must hold for a point-goal task in the embedded
simulator's layouts:

- `write_assets(root)`: `VERSION`, the unit primitives the renderer draws every URDF box, sphere,
  cylinder and plane with, and the embedded simulator's robot as a differential-drive URDF at the
  path iGibson's `Turtlebot` class loads.
- `write_scene(layout, dataset_root, scene_id, split)`: a "gibson" static scene: `mesh_z_up.obj`
  (floor, walls, obstacles, ceiling; closed triangle meshes textured from the split's appearance),
  `floors.txt`, the traversability map `floor_trav_0.png`, and `scene.json` (the frame shift and
  the geometry, read back by `read_scene_info`).
- `config_overrides(scene_id)`: the iGibson config keys these assets need.

What iGibson 2.2.2 expects, read in its source (file: function):
- `igibson/__init__.py`: assets `VERSION` must satisfy 2.0.6 <= v < 2.2.3.
- `simulator.py: Simulator.load_object_in_renderer`: a URDF box is `models/mjcf_primitives/cube.obj`
  scaled by its full size (a plane: by [100, 100, 0.01]), a sphere `sphere8.obj` scaled by
  radius / 0.5, a cylinder or capsule `cylinder16.obj` scaled by [r / 0.5, r / 0.5, length]: unit
  meshes centred on the origin, the cylinder's axis z; the colour is the URDF material's rgba.
- `render/mesh_renderer/mesh_renderer_cpu.py: MeshRenderer.load_object`: one material per OBJ shape
  (`o`), a `map_Kd` texture (GL_REPEAT) else the `Kd` colour. Its 450 fragment shader without PBR
  draws a texture unlit and a colour times 0.5 + 0.5 max(n.z, 0): no configurable light. So each
  split's light is baked into the textures here, one texture per surface and face orientation.
- `render/mesh_renderer/mesh_renderer_cpu.py: render_single_robot_camera`: the camera sits at the
  `eyes` link, looks along its x axis with its z axis up.
- `robots/turtlebot.py: Turtlebot`: URDF `models/turtlebot/turtlebot.urdf`, wheel radius 0.038 m,
  axle 0.23 m, `base_control_idx` [1, 0]: the robot's second non-fixed joint is the left wheel,
  the first the right (`robot_base.py: BaseRobot._setup_references` lists non-fixed joints in
  PyBullet order, which is the URDF's joint order here).
- `controllers/dd_controller.py: DifferentialDriveController`: an action in [-1, 1]^2 is scaled to
  `command_output_limits` (default: wheel velocity limit * radius, and that * 2 / axle: 4.3 rad/s
  for 0.5 m/s, so the task's speeds need explicit limits: `config_overrides`), turned into wheel
  speeds (v -+ w axle / 2) / radius, and each clipped to the joint's URDF velocity limit.
- `scenes/gibson_indoor_scene.py: StaticIndoorScene`: `<scene>/floors.txt` (one height a line),
  `mesh_z_up.obj` (PyBullet concave trimesh, drawn with class SemanticClass.SCENE_OBJS = 3 for
  every pixel), a PyBullet ground plane at floor + 0.02 m (`reset_floor`) that the robot stands on.
- `scenes/indoor_scene.py: IndoorScene.load_trav_map`: square `floor_trav_<floor>.png`, 0.01 m a
  pixel, 255 free; `cv2.resize` (bilinear: each cell reads the image at its centre) to size
  int(N * 0.01 / resolution), `cv2.erode` with ones((e, e)) unless e = 0 (anchor e // 2: e = 2
  erodes towards -x, -y only), everything < 255 blocked, then the largest 8-connected component.
  `map_to_world`: cell (row i, col j) is world (x, y) = ((j, i) - size / 2) * resolution, the
  cell's low corner (rows grow with y: the PNG's top row is the lowest y); `world_to_map`
  truncates (and float error can land a corner in the cell below). `get_shortest_path`: A* on
  that 8-connected graph, edge length the step's length; `get_random_point` samples cell corners.

Frames: iGibson's world = the layout's frame + `scene_offset(layout)` (x, y; z unchanged, floor at
0): the layout's bounding-box centre, rounded to 0.1 m, moves to the origin.

The traversability image copies the embedded simulator's reachable cells (`TraversabilityMap`,
already inflated by the robot's radius and margin), drawn so that iGibson's cell (i, j) is free
iff a reachable cell centre lies within half an iGibson cell of the cell's point: `config_overrides`
turns iGibson's erosion off. The two maps then agree within 0.036 m either way (test), and
iGibson's 8-connected geodesic is at most 8.3% (+ a cell) longer than the embedded 16-connected
one and never more than a cell shorter.

Segmentation: iGibson's `seg` labels the whole static mesh SCENE_OBJS (3), the robot 1 and the
background 0, so walls, floor and obstacles cannot be told apart by it (one PyBullet body, one
renderer instance). The adapter asks for `pc` instead (the renderer's camera-frame points) and
labels them from the geometry: `read_scene_info(scene).surface_classes(points_from_camera(pc,
eyes position, eyes orientation))`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from recore_nav import task

if TYPE_CHECKING:
    from recore_nav.sim.appearance import Appearance, Surface
    from recore_nav.sim.layout import Layout, TraversabilityMap
    from recore_nav.sim.scene import RobotSpec

ASSETS_VERSION = "2.2.2"            # igibson/__init__.py accepts [2.0.6, 2.2.3)
ROBOT_URDF = "models/turtlebot/turtlebot.urdf"
PRIMITIVES_DIR = "models/mjcf_primitives"
TRAV_MAP_PIXEL = 0.01               # m; IndoorScene.trav_map_default_resolution
TRAV_MAP_RESOLUTION = 0.1           # m; what config_overrides asks iGibson to resample to
TRAV_MAP_EROSION = 0                # the image is inflated already (module docstring)
FLOOR_PLANE_ELEVATION = 0.02        # m; StaticIndoorScene.reset_floor puts the ground plane there
OFFSET_STEP = 0.1                   # m; scene_offset is a multiple of it
WHEEL_RADIUS = 0.038                # m; Turtlebot.wheel_radius (the class fixes it)
AXLE_LENGTH = 0.23                  # m; Turtlebot.wheel_axle_length
# PyBullet link indices of the robot's links that touch the ground plane (right and left wheel,
# front and back caster): iGibson's `collision_ignore_link_a_ids`.
FLOOR_CONTACT_LINKS = (0, 1, 2, 3)

_SLAB = 0.1                # m; thickness of the floor and ceiling slabs
_FLOOR_MARGIN = 0.5        # m; floor and ceiling reach this far past the walls (as scene.py's)
_TRAV_MARGIN = 0.5         # m; free border of the traversability image around the layout
_PRISM_SIDES = 24          # obstacle cylinders as prisms around the true circle
_TEXTURE_SIZE = 32         # pixels, as the embedded simulator's textures
_HEADLIGHT_COS = 0.5       # the embedded camera light's typical incidence, baked in (see _shade)
_BODY_CLEARANCE = 0.01     # m; the robot body's bottom above the ground plane


# --------------------------------------------------------------------------------------------
# Assets: VERSION, primitives, robot


def write_assets(root: Path, robot: RobotSpec | None = None) -> Path:
    """Write `<root>/assets` (the directory `GIBSON_ASSETS_PATH` names) and return it.

    `robot` defaults to the embedded simulator's `RobotSpec()` (imported here: recore_nav.sim
    needs mujoco and gymnasium; pass one explicitly where they are missing).
    """
    if robot is None:
        from recore_nav.sim.scene import RobotSpec
        robot = RobotSpec()
    assets = Path(root) / "assets"
    primitives = assets / PRIMITIVES_DIR
    primitives.mkdir(parents=True, exist_ok=True)
    (assets / "VERSION").write_text(ASSETS_VERSION)

    cube, sphere, cylinder = (_Mesh(by_orientation=False) for _ in range(3))
    _add_box(cube, "primitive", (-0.5, -0.5, -0.5), (0.5, 0.5, 0.5), 1.0)
    _add_sphere(sphere, "primitive", 0.5, longitudes=16, latitudes=8)
    _add_prism(cylinder, "primitive", 0.0, 0.0, 0.5, -0.5, 0.5, 1.0, sides=16, circumscribe=False)
    cube.write(primitives / "cube.obj")
    sphere.write(primitives / "sphere8.obj")
    cylinder.write(primitives / "cylinder16.obj")

    urdf = assets / ROBOT_URDF
    urdf.parent.mkdir(parents=True, exist_ok=True)
    urdf.write_text(robot_urdf(robot))
    return assets


def wheel_velocity_limit() -> float:
    """rad/s: the fastest wheel at |action| <= 1 (both speed limits at once), rounded up to 0.01."""
    fastest = (task.MAX_LINEAR_SPEED + task.MAX_ANGULAR_SPEED * AXLE_LENGTH / 2.0) / WHEEL_RADIUS
    return math.ceil(fastest * 100.0) / 100.0


def robot_urdf(robot: RobotSpec) -> str:
    """The embedded robot as a Turtlebot-compatible URDF.

    Base frame on the ground plane (z up, x forward): the body is a cylinder of the embedded
    radius reaching the embedded body's top; `eyes` sits on the axis where the embedded camera is
    (its height above the rendered floor, which lies FLOOR_PLANE_ELEVATION below the ground plane);
    two wheels of Turtlebot's radius on an axle of Turtlebot's length (joint order: right, left,
    as `base_control_idx` [1, 0] reads them) and two frictionless casters, then `eyes`.
    """
    body_top = robot.body_height + 0.02 - FLOOR_PLANE_ELEVATION   # scene.py: body from 0.02 m to 0.02 + height
    body_length = body_top - _BODY_CLEARANCE
    eye_z = robot.camera_height - FLOOR_PLANE_ELEVATION
    caster_r, caster_x = WHEEL_RADIUS / 2.0, robot.radius - 0.05
    wheel_mass, caster_mass, eye_mass = 0.2, 0.05, 0.01
    base_mass = robot.mass - 2 * wheel_mass - 2 * caster_mass - eye_mass
    limit = wheel_velocity_limit()

    def inertial(mass: float, ixx: float, iyy: float, izz: float, z: float = 0.0) -> str:
        return (f'<inertial><origin xyz="0 0 {z:.4f}"/><mass value="{mass:.4f}"/>'
                f'<inertia ixx="{ixx:.6g}" ixy="0" ixz="0" iyy="{iyy:.6g}" iyz="0" izz="{izz:.6g}"/></inertial>')

    def cylinder_inertia(mass: float, r: float, length: float) -> tuple[float, float, float]:
        side = mass * (3 * r * r + length * length) / 12.0
        return side, side, mass * r * r / 2.0

    wheel_width = 0.02
    w_side, _, w_axis = cylinder_inertia(wheel_mass, WHEEL_RADIUS, wheel_width)
    wheels = []
    for side, y in (("right", -AXLE_LENGTH / 2.0), ("left", AXLE_LENGTH / 2.0)):
        wheels.append(f"""
  <link name="wheel_{side}_link">
    {inertial(wheel_mass, w_side, w_axis, w_side)}
    <visual><origin rpy="1.5708 0 0"/><geometry><cylinder radius="{WHEEL_RADIUS}" length="{wheel_width}"/></geometry>
      <material name="tyre"><color rgba="0.1 0.1 0.1 1"/></material></visual>
    <collision><origin rpy="1.5708 0 0"/><geometry><cylinder radius="{WHEEL_RADIUS}" length="{wheel_width}"/></geometry></collision>
    <contact><lateral_friction value="1.0"/><rolling_friction value="0"/><spinning_friction value="0"/></contact>
  </link>
  <joint name="wheel_{side}_joint" type="continuous">
    <parent link="base_link"/><child link="wheel_{side}_link"/>
    <origin xyz="0 {y:.4f} {WHEEL_RADIUS}"/><axis xyz="0 1 0"/>
    <limit effort="20" velocity="{limit:.2f}"/><dynamics damping="0" friction="0"/>
  </joint>""")
    casters = []
    c_inertia = 0.4 * caster_mass * caster_r ** 2
    for name, x in (("front", caster_x), ("back", -caster_x)):
        casters.append(f"""
  <link name="caster_{name}_link">
    {inertial(caster_mass, c_inertia, c_inertia, c_inertia)}
    <collision><geometry><sphere radius="{caster_r}"/></geometry></collision>
    <contact><lateral_friction value="0"/><rolling_friction value="0"/><spinning_friction value="0"/></contact>
  </link>
  <joint name="caster_{name}_joint" type="fixed">
    <parent link="base_link"/><child link="caster_{name}_link"/><origin xyz="{x:.4f} 0 {caster_r}"/>
  </joint>""")
    b_ixx, b_iyy, b_izz = cylinder_inertia(base_mass, robot.radius, body_length)
    body_z = _BODY_CLEARANCE + body_length / 2.0
    # The base's mass sits at axle height (a low ballast), so accelerating does not pitch the body
    # onto a caster and off its wheels (PyBullet, 1/120 s steps, from rest at 0.5 m/s: 0.51 m/s
    # after 0.1 s; 0.40 m/s with the mass at the body's centre).
    return f"""<?xml version="1.0"?>
<!-- recore_nav's embedded robot for iGibson's Turtlebot class (training/environments/igibson_assets.py).
     Wheel velocity limit {limit:.2f} rad/s: with DifferentialDriveController command_output_limits
     [[-{task.MAX_LINEAR_SPEED}, -{task.MAX_ANGULAR_SPEED}], [{task.MAX_LINEAR_SPEED}, {task.MAX_ANGULAR_SPEED}]] no action in [-1, 1] is clipped. -->
<robot name="recore_nav_robot">
  <link name="base_link">
    {inertial(base_mass, b_ixx, b_iyy, b_izz, WHEEL_RADIUS)}
    <visual><origin xyz="0 0 {body_z:.4f}"/><geometry><cylinder radius="{robot.radius}" length="{body_length:.4f}"/></geometry>
      <material name="body"><color rgba="0.9 0.9 0.9 1"/></material></visual>
    <collision><origin xyz="0 0 {body_z:.4f}"/><geometry><cylinder radius="{robot.radius}" length="{body_length:.4f}"/></geometry></collision>
  </link>{''.join(wheels)}{''.join(casters)}
  <link name="eyes">
    {inertial(eye_mass, 1e-6, 1e-6, 1e-6)}
  </link>
  <joint name="eyes_joint" type="fixed">
    <parent link="base_link"/><child link="eyes"/><origin xyz="0 0 {eye_z:.4f}"/>
  </joint>
</robot>
"""


def turtlebot_config() -> dict[str, Any]:
    """iGibson's `robot` config: its Turtlebot class (whatever URDF the assets hold at ROBOT_URDF)
    under `DifferentialDriveController`, an action of 1 meaning the task's speed limits."""
    v, w = task.MAX_LINEAR_SPEED, task.MAX_ANGULAR_SPEED
    return {"name": "Turtlebot", "action_type": "continuous", "action_normalize": True,
            "controller_config": {"base": {"name": "DifferentialDriveController",
                                           "command_output_limits": [[-v, -w], [v, w]]}}}


def config_overrides(scene_id: str, robot: RobotSpec | None = None) -> dict[str, Any]:
    """The iGibson config keys these assets need (merge them over the task's config)."""
    if robot is None:
        from recore_nav.sim.scene import RobotSpec
        robot = RobotSpec()
    return {
        "scene": "gibson", "scene_id": scene_id, "build_graph": True,
        "trav_map_resolution": TRAV_MAP_RESOLUTION, "trav_map_erosion": TRAV_MAP_EROSION,
        "robot": turtlebot_config(),
        "collision_ignore_link_a_ids": list(FLOOR_CONTACT_LINKS),
        "vertical_fov": robot.camera_fovy_deg,
        "hide_robot": True,    # read only where iGibson makes the MeshRendererSettings itself
        "enable_pbr": False, "enable_shadow": False, "load_texture": True,
    }


# --------------------------------------------------------------------------------------------
# Scenes


def scene_offset(layout: Layout) -> tuple[float, float]:
    """(dx, dy) with iGibson (x, y) = layout (x, y) + (dx, dy): the bounds' centre, rounded to
    OFFSET_STEP, moves to iGibson's origin."""
    b = layout.bounds
    return (float(round(-round((b.x0 + b.x1) / 2.0 / OFFSET_STEP) * OFFSET_STEP, 9)),
            float(round(-round((b.y0 + b.y1) / 2.0 / OFFSET_STEP) * OFFSET_STEP, 9)))


def write_scene(layout: Layout, dataset_root: Path, scene_id: str, split: str = "train", *,
                seed: int = 0, appearance: Appearance | None = None,
                traversability: TraversabilityMap | None = None) -> Path:
    """Write the iGibson "gibson" scene `<dataset_root>/<scene_id>/` of a layout; return its path.

    `appearance` defaults to `sample_appearance(split, default_rng(seed))` (the embedded
    simulator's palettes; `sim2real` looks like `train`, its sensor shift is the adapter's);
    `traversability` to `TraversabilityMap(layout, LayoutConfig())`, the embedded simulator's map,
    whose reachable cells the traversability image copies. Both defaults import recore_nav.sim,
    which needs mujoco and gymnasium: pass them where those are missing.
    """
    if appearance is None:
        from recore_nav.sim.appearance import sample_appearance
        appearance = sample_appearance(split, np.random.default_rng(seed))
    if traversability is None:
        from recore_nav.sim.layout import LayoutConfig, TraversabilityMap
        traversability = TraversabilityMap(layout, LayoutConfig())
    scene_dir = Path(dataset_root) / scene_id
    scene_dir.mkdir(parents=True, exist_ok=True)
    offset = scene_offset(layout)

    mesh = scene_mesh(layout, offset, appearance)
    rng = np.random.default_rng(seed)
    with open(scene_dir / "mesh_z_up.mtl", "w") as mtl:
        for material in sorted(mesh.groups):
            surface, orientation = material.rsplit("_", 1)
            pixels = _texture(appearance.surfaces[surface], rng) * _shade(_ORIENTATIONS[orientation], appearance)
            image = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
            Image.fromarray(image, "RGB").save(scene_dir / f"{material}.png")
            kd = " ".join(f"{c:.4f}" for c in image.reshape(-1, 3).mean(axis=0) / 255.0)
            mtl.write(f"newmtl {material}\nKa 0 0 0\nKd {kd}\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {material}.png\n\n")
    mesh.write(scene_dir / "mesh_z_up.obj", mtllib="mesh_z_up.mtl")
    (scene_dir / "floors.txt").write_text("0.0\n")

    free = traversability_image(traversability, offset)
    Image.fromarray(free, "L").save(scene_dir / "floor_trav_0.png")

    info = {
        "format": 1, "scene_id": scene_id, "split": split, "offset": list(offset),
        "wall_height": layout.wall_height, "trav_map_pixel": TRAV_MAP_PIXEL,
        "trav_map_resolution": TRAV_MAP_RESOLUTION, "trav_map_size": int(free.shape[0]),
        "rooms": [[r.x0, r.y0, r.x1, r.y1] for r in layout.rooms],
        "walls": [[w.cx, w.cy, w.hx, w.hy, w.height] for w in layout.walls],
        "boxes": [[o.cx, o.cy, o.hx, o.hy, o.height] for o in layout.obstacles if not hasattr(o, "radius")],
        "cylinders": [[o.cx, o.cy, o.radius, o.height] for o in layout.obstacles if hasattr(o, "radius")],
    }
    (scene_dir / "scene.json").write_text(json.dumps(info, indent=1))
    return scene_dir


def scene_mesh(layout: Layout, offset: tuple[float, float], appearance: Appearance) -> _Mesh:
    """Floor and ceiling slabs, walls, obstacles (cylinders as prisms around the true circle), in
    iGibson's frame, one material per surface and face orientation."""
    dx, dy = offset
    b = layout.bounds
    lo_x, lo_y = b.x0 + dx - _FLOOR_MARGIN, b.y0 + dy - _FLOOR_MARGIN
    hi_x, hi_y = b.x1 + dx + _FLOOR_MARGIN, b.y1 + dy + _FLOOR_MARGIN
    h = layout.wall_height
    mesh = _Mesh()
    s = appearance.surfaces
    _add_box(mesh, "floor", (lo_x, lo_y, -_SLAB), (hi_x, hi_y, 0.0), s["floor"].repeat)
    _add_box(mesh, "ceiling", (lo_x, lo_y, h), (hi_x, hi_y, h + _SLAB), s["ceiling"].repeat)
    for w in layout.walls:
        _add_box(mesh, "wall", (w.cx + dx - w.hx, w.cy + dy - w.hy, 0.0), (w.cx + dx + w.hx, w.cy + dy + w.hy, w.height),
                 s["wall"].repeat)
    for k, o in enumerate(layout.obstacles):
        surface = "obstacle_a" if k % 2 == 0 else "obstacle_b"     # as scene.py alternates them
        if hasattr(o, "radius"):
            _add_prism(mesh, surface, o.cx + dx, o.cy + dy, o.radius, 0.0, o.height, s[surface].repeat,
                       sides=_PRISM_SIDES, circumscribe=True)
        else:
            _add_box(mesh, surface, (o.cx + dx - o.hx, o.cy + dy - o.hy, 0.0),
                     (o.cx + dx + o.hx, o.cy + dy + o.hy, o.height), s[surface].repeat)
    return mesh


def traversability_image(traversability: TraversabilityMap, offset: tuple[float, float],
                         resolution: float = TRAV_MAP_RESOLUTION) -> np.ndarray:
    """uint8 (N, N), 0.01 m a pixel, 255 free: what iGibson, resampling it to `resolution`, reads
    as "an embedded reachable cell's centre lies within `resolution` / 2 (per axis) of my point".

    Pixel (row i, column j) covers iGibson's [(j, i) - N / 2, (j, i) + 1 - N / 2) * 0.01 m (x, y).
    iGibson reads its cell (i, j) at the cell's centre and places it at the cell's low corner
    (`map_to_world`), so the pixel at q holds the value for the point q - `resolution` / 2: a
    cell is free iff any embedded reachable cell centre lies in the `resolution`-wide square
    around the cell's point. Both maps then agree within half an iGibson cell either way, and a
    passage one embedded cell wide stays open. N is even, and int(N * 0.01 / r), iGibson's
    resampled size, is exact for r = 0.1 and 0.05 m (a float product can fall just short).
    """
    dx, dy = offset
    grid = traversability
    g, px, half = grid.resolution, TRAV_MAP_PIXEL, resolution / 2.0
    height, width = grid.shape
    x0, y0 = grid.origin[0] + dx, grid.origin[1] + dy           # the grid's corner in iGibson's frame
    reach = max(abs(x0), abs(x0 + width * g), abs(y0), abs(y0 + height * g)) + _TRAV_MARGIN
    size = 20 * math.ceil(reach / px / 10.0 - 1e-9)
    while any(int(size * px / r) != round(size * px / r) for r in (0.1, 0.05)):
        size += 20
    points = (np.arange(size) + 0.5 - size / 2) * px - half     # the point each pixel stands for

    def cell_ranges(origin: float, count: int) -> tuple[np.ndarray, np.ndarray]:
        # first and last+1 embedded cell whose centre origin + (k + 0.5) g is within `half` of a point
        lo = np.clip(np.ceil((points - half - origin) / g - 0.5 - 1e-9), 0, count).astype(np.int64)
        hi = np.clip(np.floor((points + half - origin) / g - 0.5 + 1e-9) + 1, 0, count).astype(np.int64)
        return lo, np.maximum(hi, lo)

    (c0, c1), (r0, r1) = cell_ranges(x0, width), cell_ranges(y0, height)
    table = np.zeros((height + 1, width + 1), dtype=np.int64)                # summed-area table
    table[1:, 1:] = grid.reachable.cumsum(axis=0).cumsum(axis=1)
    count = (table[np.ix_(r1, c1)] - table[np.ix_(r0, c1)] - table[np.ix_(r1, c0)] + table[np.ix_(r0, c0)])
    return np.where(count > 0, 255, 0).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Reading a scene back: frames and segmentation


@dataclass(frozen=True)
class SceneInfo:
    """A written scene's frame shift and geometry (`scene.json`), for the adapter: map poses
    between the layout's frame and iGibson's, and label rendered points with our classes."""

    offset: tuple[float, float]
    wall_height: float
    walls: np.ndarray       # (n, 5): cx, cy, hx, hy, height in the layout's frame
    boxes: np.ndarray       # (n, 5)
    cylinders: np.ndarray   # (n, 4): cx, cy, radius, height

    def to_igibson(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) + np.asarray(self.offset)

    def to_layout(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) - np.asarray(self.offset)

    def surface_classes(self, points: np.ndarray, tolerance: float = 0.02) -> np.ndarray:
        """Our `seg` class (task.SEG_CLASSES) of points in iGibson's world frame, shape (..., 3):
        floor (z <= tolerance), wall or obstacle (within `tolerance` of one), else other
        (ceiling, the background, the robot)."""
        p = np.asarray(points, dtype=np.float64)
        x, y, z = p[..., 0] - self.offset[0], p[..., 1] - self.offset[1], p[..., 2]
        classes = np.full(p.shape[:-1], task.SEG_CLASSES.index("other"), dtype=np.uint8)

        def inside_boxes(boxes: np.ndarray) -> np.ndarray:
            if len(boxes) == 0:
                return np.zeros(x.shape, dtype=bool)
            cx, cy, hx, hy, h = (boxes[:, k].reshape((-1,) + (1,) * x.ndim) for k in range(5))
            return ((np.abs(x - cx) <= hx + tolerance) & (np.abs(y - cy) <= hy + tolerance)
                    & (z <= h + tolerance)).any(axis=0)

        obstacle = inside_boxes(self.boxes)
        if len(self.cylinders):
            cx, cy, r, h = (self.cylinders[:, k].reshape((-1,) + (1,) * x.ndim) for k in range(4))
            obstacle |= ((np.hypot(x - cx, y - cy) <= r + tolerance) & (z <= h + tolerance)).any(axis=0)
        below_ceiling = z < self.wall_height - tolerance
        classes[obstacle & below_ceiling] = task.SEG_CLASSES.index("obstacle")
        classes[inside_boxes(self.walls) & below_ceiling] = task.SEG_CLASSES.index("wall")
        classes[z <= tolerance] = task.SEG_CLASSES.index("floor")
        return classes


def read_scene_info(scene_dir: Path) -> SceneInfo:
    info = json.loads((Path(scene_dir) / "scene.json").read_text())
    return SceneInfo(offset=(float(info["offset"][0]), float(info["offset"][1])),
                     wall_height=float(info["wall_height"]),
                     walls=np.asarray(info["walls"], dtype=np.float64).reshape(-1, 5),
                     boxes=np.asarray(info["boxes"], dtype=np.float64).reshape(-1, 5),
                     cylinders=np.asarray(info["cylinders"], dtype=np.float64).reshape(-1, 4))


def points_from_camera(pc: np.ndarray, eye_position: np.ndarray, eye_orientation: np.ndarray) -> np.ndarray:
    """iGibson's `pc` output (the renderer's "3d" mode: camera frame x right, y up, z backwards)
    in its world frame, given the `eyes` link's position and xyzw quaternion. Background pixels
    (0, 0, 0) land on the camera itself, which `surface_classes` calls other."""
    qx, qy, qz, qw = (float(v) for v in eye_orientation)
    rotation = np.array([
        [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
        [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
        [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)],
    ])
    forward, left, up = rotation[:, 0], rotation[:, 1], rotation[:, 2]
    camera_axes = np.stack([-left, up, -forward], axis=1)    # columns: camera x, y, z in the world
    p = np.asarray(pc, dtype=np.float64)[..., :3]
    return p @ camera_axes.T + np.asarray(eye_position, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Appearance: textures with the split's light baked in

_ORIENTATIONS = {"up": (0.0, 0.0, 1.0), "down": (0.0, 0.0, -1.0)}
_ORIENTATIONS.update({f"az{45 * k:03d}": (math.cos(math.radians(45 * k)), math.sin(math.radians(45 * k)), 0.0)
                      for k in range(8)})


def _orientation(normal: np.ndarray) -> str:
    """The face orientation a normal falls in: up, down, or one of eight 45-degree azimuths."""
    if normal[2] > 0.5:
        return "up"
    if normal[2] < -0.5:
        return "down"
    k = round(math.degrees(math.atan2(normal[1], normal[0])) / 45.0) % 8
    return f"az{45 * k:03d}"


def _shade(normal: tuple[float, float, float], appearance: Appearance) -> float:
    """The embedded simulator's lighting of a face (MuJoCo: headlight ambient + directional
    diffuse * cos + headlight diffuse 0.4 * diffuse * cos to the camera), the camera's cosine
    taken as _HEADLIGHT_COS since a texture cannot depend on the view."""
    direct = max(0.0, -float(np.dot(normal, appearance.light_direction)))
    d = appearance.light_diffuse
    return min(1.0, appearance.light_ambient + d * direct + 0.4 * d * _HEADLIGHT_COS)


def _texture(surface: Surface, rng: np.random.Generator) -> np.ndarray:
    """float (S, S, 3) in [0, 1]: the embedded simulator's procedural texture of a surface
    (MuJoCo builtins checker, gradient; flat with random, edge or cross marks)."""
    n = _TEXTURE_SIZE
    c1, c2 = np.array(surface.rgb1), np.array(surface.rgb2)
    i, j = np.mgrid[0:n, 0:n]
    if surface.kind == "checker":
        mark = ((i < n // 2) ^ (j < n // 2))
    elif surface.kind == "gradient":
        r = np.hypot(i + 0.5 - n / 2, j + 0.5 - n / 2) / (n / 2)
        t = 1.0 / (1.0 + np.exp(-8.0 * (np.clip(r, 0.0, 1.0) - 0.5)))
        return c1 * (1.0 - t[..., None]) + c2 * t[..., None]
    elif surface.kind == "noise":
        mark = rng.random((n, n)) < 0.25
    elif surface.kind == "grid":
        mark = (i == 0) | (j == 0) | (i == n - 1) | (j == n - 1)
    elif surface.kind == "cross":
        mark = (i == n // 2) | (j == n // 2)
    else:
        raise ValueError(f"unknown texture kind {surface.kind!r}")
    return np.where(mark[..., None], c2, c1)


# --------------------------------------------------------------------------------------------
# Triangle meshes


class _Mesh:
    """Triangles grouped by material, `<surface>_<orientation>` (or `<surface>` without
    `by_orientation`), written as one Wavefront OBJ with one object per material (iGibson's
    renderer reads one material per shape)."""

    def __init__(self, by_orientation: bool = True) -> None:
        self.by_orientation = by_orientation
        self.vertices: list[tuple[float, float, float]] = []
        self.groups: dict[str, list[tuple[tuple[int, int, int], np.ndarray, tuple]]] = {}

    def vertex(self, x: float, y: float, z: float) -> int:
        self.vertices.append((float(x), float(y), float(z)))
        return len(self.vertices) - 1

    def triangle(self, surface: str, corners: tuple[int, int, int], uvs: tuple) -> None:
        """A triangle counter-clockwise seen from outside; its material from its normal."""
        a, b, c = (np.array(self.vertices[k]) for k in corners)
        normal = np.cross(b - a, c - a)
        normal /= np.linalg.norm(normal)
        material = f"{surface}_{_orientation(normal)}" if self.by_orientation else surface
        self.groups.setdefault(material, []).append((corners, normal, uvs))

    def write(self, path: Path, mtllib: str | None = None) -> None:
        lines = ["# recore_nav (training/environments/igibson_assets.py)"]
        if mtllib:
            lines.append(f"mtllib {mtllib}")
        lines += [f"v {x:.5f} {y:.5f} {z:.5f}" for x, y, z in self.vertices]
        n_uv = n_normal = 0
        for material in sorted(self.groups):
            lines += [f"o {material}"] + ([f"usemtl {material}"] if mtllib else [])
            for corners, normal, uvs in self.groups[material]:
                lines += [f"vt {u:.5f} {v:.5f}" for u, v in uvs]
                lines.append(f"vn {normal[0]:.6f} {normal[1]:.6f} {normal[2]:.6f}")
                n_normal += 1
                lines.append("f " + " ".join(f"{c + 1}/{n_uv + k + 1}/{n_normal}" for k, c in enumerate(corners)))
                n_uv += 3
        Path(path).write_text("\n".join(lines) + "\n")


def _add_box(mesh: _Mesh, surface: str, lo: tuple, hi: tuple, repeat: float) -> None:
    """An axis-aligned box; texture coordinates in metres times `repeat` along each face's axes."""
    corner = [mesh.vertex(hi[0] if k & 1 else lo[0], hi[1] if k & 2 else lo[1], hi[2] if k & 4 else lo[2])
              for k in range(8)]
    # Faces as corner-bit quads, counter-clockwise from outside, with the two axes their texture follows.
    quads = (((0, 2, 3, 1), (0, 1)), ((4, 5, 7, 6), (0, 1)), ((0, 1, 5, 4), (0, 2)),
             ((2, 6, 7, 3), (0, 2)), ((0, 4, 6, 2), (1, 2)), ((1, 3, 7, 5), (1, 2)))
    for quad, (ua, va) in quads:
        uv = [(mesh.vertices[corner[k]][ua] * repeat, mesh.vertices[corner[k]][va] * repeat) for k in quad]
        mesh.triangle(surface, (corner[quad[0]], corner[quad[1]], corner[quad[2]]), (uv[0], uv[1], uv[2]))
        mesh.triangle(surface, (corner[quad[0]], corner[quad[2]], corner[quad[3]]), (uv[0], uv[2], uv[3]))


def _add_prism(mesh: _Mesh, surface: str, cx: float, cy: float, radius: float, z0: float, z1: float,
               repeat: float, sides: int, circumscribe: bool) -> None:
    """A vertical regular prism: vertices on the circle, or (`circumscribe`) its sides tangent to it."""
    r = radius / math.cos(math.pi / sides) if circumscribe else radius
    angles = [2.0 * math.pi * k / sides for k in range(sides)]
    bottom = [mesh.vertex(cx + r * math.cos(a), cy + r * math.sin(a), z0) for a in angles]
    top = [mesh.vertex(cx + r * math.cos(a), cy + r * math.sin(a), z1) for a in angles]
    centre_bottom, centre_top = mesh.vertex(cx, cy, z0), mesh.vertex(cx, cy, z1)
    chord = 2.0 * r * math.sin(math.pi / sides)
    for k in range(sides):
        n = (k + 1) % sides
        u0, u1 = k * chord * repeat, (k + 1) * chord * repeat
        v0, v1 = z0 * repeat, z1 * repeat
        mesh.triangle(surface, (bottom[k], bottom[n], top[n]), ((u0, v0), (u1, v0), (u1, v1)))
        mesh.triangle(surface, (bottom[k], top[n], top[k]), ((u0, v0), (u1, v1), (u0, v1)))

        def cap_uv(index: int) -> tuple[float, float]:
            return mesh.vertices[index][0] * repeat, mesh.vertices[index][1] * repeat

        mesh.triangle(surface, (centre_top, top[k], top[n]), (cap_uv(centre_top), cap_uv(top[k]), cap_uv(top[n])))
        mesh.triangle(surface, (centre_bottom, bottom[n], bottom[k]),
                      (cap_uv(centre_bottom), cap_uv(bottom[n]), cap_uv(bottom[k])))


def _add_sphere(mesh: _Mesh, surface: str, radius: float, longitudes: int, latitudes: int) -> None:
    """A UV sphere centred on the origin, poles on z."""
    south, north = mesh.vertex(0.0, 0.0, -radius), mesh.vertex(0.0, 0.0, radius)
    rings = []
    for i in range(1, latitudes):
        polar = math.pi * i / latitudes
        rings.append([mesh.vertex(radius * math.sin(polar) * math.cos(2 * math.pi * k / longitudes),
                                  radius * math.sin(polar) * math.sin(2 * math.pi * k / longitudes),
                                  -radius * math.cos(polar)) for k in range(longitudes)])

    def uv(i: int, k: int) -> tuple[float, float]:
        return k / longitudes, i / latitudes

    for k in range(longitudes):
        n = (k + 1) % longitudes
        mesh.triangle(surface, (south, rings[0][n], rings[0][k]), (uv(0, k), uv(1, k + 1), uv(1, k)))
        mesh.triangle(surface, (north, rings[-1][k], rings[-1][n]),
                      (uv(latitudes, k), uv(latitudes - 1, k), uv(latitudes - 1, k + 1)))
        for i in range(latitudes - 2):
            a, b, c, d = rings[i][k], rings[i][n], rings[i + 1][n], rings[i + 1][k]
            mesh.triangle(surface, (a, b, c), (uv(i + 1, k), uv(i + 1, k + 1), uv(i + 2, k + 1)))
            mesh.triangle(surface, (a, c, d), (uv(i + 1, k), uv(i + 2, k + 1), uv(i + 2, k)))
