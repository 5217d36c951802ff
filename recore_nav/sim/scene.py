"""MJCF for a layout, and the egocentric camera that renders it (rgb, metric depth, classes).

Rendering is tuned for CPUs (see NOTES.md): no shadows, no multisampling, an offscreen buffer
the size of the image, and ONE OpenGL context per process shared by every scene and every
environment in that process. Each new model gets only a new `MjrContext` (textures, buffers)
on that context, which costs a few ms where a new `mujoco.Renderer` costs 110-150 ms.
"""

from __future__ import annotations

import atexit
import math
import os
import weakref
from dataclasses import dataclass

import mujoco
import numpy as np

from recore_nav.sim.appearance import Appearance, Surface
from recore_nav.task import DEPTH_MAX
from recore_nav.sim.layout import Box, Layout

# Semantic classes of the `seg` observation.
SEG_FLOOR, SEG_WALL, SEG_OBSTACLE, SEG_OTHER = 0, 1, 2, 3
_PREFIX_CLASS = {"floor": SEG_FLOOR, "wall": SEG_WALL, "obstacle": SEG_OBSTACLE}

_ZNEAR, _ZFAR = 0.03, 40.0  # clip planes, metres


@dataclass(frozen=True)
class RobotSpec:
    """The differential-drive robot: a cylinder with an egocentric camera."""

    radius: float = 0.18
    body_height: float = 0.3
    mass: float = 5.0
    camera_height: float = 0.5
    camera_fovy_deg: float = 90.0      # square images: the horizontal FOV is the same
    physics_timestep: float = 0.01


def build_mjcf(layout: Layout, appearance: Appearance, image_size: int, robot: RobotSpec) -> str:
    """The MJCF text of a scene: floor, walls, obstacles and ceiling (static), and the robot on
    joints x, y, yaw driven by body-frame velocity servos (forward, yaw rate; a stiff lateral
    servo at zero stands in for the wheels' no-slip constraint)."""
    b = layout.bounds
    cx, cy = (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
    hx, hy = (b.x1 - b.x0) / 2 + 0.5, (b.y1 - b.y0) / 2 + 0.5
    extent = 2.0 * math.hypot(hx, hy)
    textures, materials = [], []
    for name, surface in appearance.surfaces.items():
        textures.append(_texture_xml(name, surface))
        materials.append(f'<material name="{name}" texture="{name}" texrepeat="{surface.repeat:.3f} '
                         f'{surface.repeat:.3f}" texuniform="true" specular="0" shininess="0"/>')
    static = []  # walls and obstacles collide with the robot only (contype/conaffinity 1)
    for k, wall in enumerate(layout.walls):
        static.append(f'<geom name="wall{k}" type="box" pos="{wall.cx:.4f} {wall.cy:.4f} {wall.height / 2:.4f}" '
                      f'size="{wall.hx:.4f} {wall.hy:.4f} {wall.height / 2:.4f}" material="wall"/>')
    for k, obstacle in enumerate(layout.obstacles):
        material = "obstacle_a" if k % 2 == 0 else "obstacle_b"
        if isinstance(obstacle, Box):
            shape = f'type="box" size="{obstacle.hx:.4f} {obstacle.hy:.4f} {obstacle.height / 2:.4f}"'
        else:
            shape = f'type="cylinder" size="{obstacle.radius:.4f} {obstacle.height / 2:.4f}"'
        static.append(f'<geom name="obstacle{k}" {shape} pos="{obstacle.cx:.4f} {obstacle.cy:.4f} '
                      f'{obstacle.height / 2:.4f}" material="{material}"/>')
    amb, dif = appearance.light_ambient, appearance.light_diffuse
    head = 0.4 * dif   # a camera-mounted light, so surfaces facing the robot are never black
    lx, ly, lz = appearance.light_direction
    r = robot
    kv_linear, kv_angular = 40.0 * r.mass, 40.0 * 0.5 * r.mass * r.radius ** 2
    return f"""<mujoco model="pointnav">
  <compiler angle="radian"/>
  <option timestep="{r.physics_timestep}" integrator="implicitfast" gravity="0 0 0"/>
  <statistic extent="{extent:.3f}" center="{cx:.3f} {cy:.3f} 1"/>
  <visual>
    <global offwidth="{image_size}" offheight="{image_size}"/>
    <quality shadowsize="0" offsamples="0"/>
    <map znear="{_ZNEAR / extent:.6f}" zfar="{_ZFAR / extent:.6f}"/>
    <headlight ambient="{amb:.3f} {amb:.3f} {amb:.3f}" diffuse="{head:.3f} {head:.3f} {head:.3f}" specular="0 0 0"/>
  </visual>
  <asset>
    {''.join(textures)}
    {''.join(materials)}
  </asset>
  <default>
    <geom contype="1" conaffinity="1" friction="0.3 0.005 0.0001" rgba="1 1 1 1"/>
  </default>
  <worldbody>
    <light directional="true" castshadow="false" pos="{cx:.3f} {cy:.3f} 5" dir="{lx:.3f} {ly:.3f} {lz:.3f}"
           diffuse="{dif:.3f} {dif:.3f} {dif:.3f}" specular="0 0 0"/>
    <geom name="floor" type="plane" pos="{cx:.3f} {cy:.3f} 0" size="{hx:.3f} {hy:.3f} 0.1" material="floor"
          contype="0" conaffinity="0"/>
    <geom name="ceiling" type="box" pos="{cx:.3f} {cy:.3f} {layout.wall_height + 0.05:.3f}"
          size="{hx:.3f} {hy:.3f} 0.05" material="ceiling" contype="0" conaffinity="0"/>
    {''.join(static)}
    <body name="robot" pos="0 0 0">
      <joint name="x" type="slide" axis="1 0 0" damping="0"/>
      <joint name="y" type="slide" axis="0 1 0" damping="0"/>
      <joint name="yaw" type="hinge" axis="0 0 1" damping="0"/>
      <geom name="robot" type="cylinder" size="{r.radius} {r.body_height / 2}" pos="0 0 {r.body_height / 2 + 0.02}"
            mass="{r.mass}" group="3" rgba="0.9 0.9 0.9 1"/>
      <site name="base" pos="0 0 0"/>
      <camera name="eye" pos="0 0 {r.camera_height}" xyaxes="0 -1 0 0 0 1" fovy="{r.camera_fovy_deg}"/>
    </body>
  </worldbody>
  <actuator>
    <velocity name="forward" site="base" gear="1 0 0 0 0 0" kv="{kv_linear:.4f}" forcelimited="true" forcerange="-60 60"/>
    <velocity name="lateral" site="base" gear="0 1 0 0 0 0" kv="{kv_linear:.4f}" forcelimited="true" forcerange="-60 60"/>
    <velocity name="turn" site="base" gear="0 0 0 0 0 1" kv="{kv_angular:.6f}" forcelimited="true" forcerange="-5 5"/>
  </actuator>
</mujoco>"""


def _texture_xml(name: str, surface: Surface) -> str:
    c1 = " ".join(f"{v:.3f}" for v in surface.rgb1)
    c2 = " ".join(f"{v:.3f}" for v in surface.rgb2)
    kind = surface.kind
    common = f'name="{name}" type="2d" width="32" height="32"'
    if kind in ("checker", "gradient"):
        return f'<texture {common} builtin="{kind}" rgb1="{c1}" rgb2="{c2}"/>'
    if kind == "noise":
        return f'<texture {common} builtin="flat" rgb1="{c1}" mark="random" random="0.25" markrgb="{c2}"/>'
    if kind == "grid":
        return f'<texture {common} builtin="flat" rgb1="{c1}" mark="edge" markrgb="{c2}"/>'
    if kind == "cross":
        return f'<texture {common} builtin="flat" rgb1="{c1}" mark="cross" markrgb="{c2}"/>'
    raise ValueError(f"unknown texture kind {kind!r}")


def geom_classes(model: mujoco.MjModel) -> np.ndarray:
    """Semantic class of each model geom, from its name prefix (floor, wall*, obstacle*)."""
    classes = np.full(model.ngeom, SEG_OTHER, dtype=np.uint8)
    for g in range(model.ngeom):
        name = model.geom(g).name
        for prefix, cls in _PREFIX_CLASS.items():
            if name.startswith(prefix):
                classes[g] = cls
    return classes


# --------------------------------------------------------------------------------------------
# Rendering

_GL = {"context": None, "pid": None}
_OPEN_CAMERAS: weakref.WeakSet = weakref.WeakSet()


def _free_gl_at_exit() -> None:
    # Free GL objects while the interpreter and the EGL display still work (the GL wrappers'
    # own __del__ fails at shutdown). Registered after the context exists, so it runs before
    # the EGL backend's own exit handler.
    for camera in list(_OPEN_CAMERAS):
        camera.close()
    if _GL["context"] is not None and _GL["pid"] == os.getpid():
        _GL["context"].free()
    _GL["context"] = None


def _process_gl_context():
    """The one GL context of this process, made on first use and kept for the process's life."""
    if _GL["context"] is not None and _GL["pid"] != os.getpid():
        raise RuntimeError("a GL context cannot be used after fork; start simulator processes with 'spawn'")
    if _GL["context"] is None:
        from mujoco.rendering.classic.gl_context import GLContext
        if GLContext is None:
            raise RuntimeError(f"no offscreen OpenGL backend for MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}")
        context = GLContext(64, 64)   # MuJoCo renders into its own framebuffer; this size is irrelevant
        context.make_current()
        _GL["context"], _GL["pid"] = context, os.getpid()
        atexit.register(_free_gl_at_exit)
    return _GL["context"]


class EgocentricCamera:
    """Renders a model's camera as rgb uint8 (H, W, 3), depth float32 (H, W, 1) metres and
    seg uint8 (H, W) classes, on the process's shared GL context. `bind` switches to a new model
    (one new MjrContext); nothing else is reallocated."""

    def __init__(self, image_size: int, camera_name: str = "eye") -> None:
        self.size = image_size
        self.camera_name = camera_name
        self._gl = _process_gl_context()
        self._model: mujoco.MjModel | None = None
        self._context: mujoco.MjrContext | None = None
        self._scene: mujoco.MjvScene | None = None
        self._option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._rect = mujoco.MjrRect(0, 0, image_size, image_size)
        self._rgb = np.empty((image_size, image_size, 3), dtype=np.uint8)
        self._raw_depth = np.empty((image_size, image_size), dtype=np.float32)
        self._ids = np.empty((image_size, image_size, 3), dtype=np.uint8)
        _OPEN_CAMERAS.add(self)

    def bind(self, model: mujoco.MjModel) -> None:
        self._gl.make_current()
        self._free_context()
        self._model = model
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 16)
        self._camera.fixedcamid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera_name)
        self._classes = geom_classes(model)
        self._lut: np.ndarray | None = None
        # Reverse-Z depth buffer -> metres (as mujoco.Renderer does), constants per model.
        near = np.float32(model.vis.map.znear * model.stat.extent)
        far = np.float32(model.vis.map.zfar * model.stat.extent)
        self._depth_c = float(np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5))
        self._depth_d = float(np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near)))

    def render(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._context is None:
            raise RuntimeError("EgocentricCamera.render called before bind or after close")
        model, scene, context = self._model, self._scene, self._context
        mujoco.mjv_updateScene(model, data, self._option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL, scene)
        mujoco.mjr_render(self._rect, scene, context)
        mujoco.mjr_readPixels(self._rgb, self._raw_depth, self._rect, context)
        # Second pass with each geom drawn in a flat colour = its scene index + 1.
        scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
        scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        mujoco.mjr_render(self._rect, scene, context)
        mujoco.mjr_readPixels(self._ids, None, self._rect, context)
        scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = False
        scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = False

        # Scene geoms -> model geoms -> classes (the scene's order is not the model's). A scene
        # of static geoms keeps its order from frame to frame, so the table is built once.
        if self._lut is None or len(self._lut) != scene.ngeom + 1:
            self._lut = np.full(scene.ngeom + 1, SEG_OTHER, dtype=np.uint8)
            for k in range(scene.ngeom):
                geom = scene.geoms[k]
                if geom.objtype == mujoco.mjtObj.mjOBJ_GEOM and geom.segid >= 0:
                    self._lut[geom.segid + 1] = self._classes[geom.objid]
        lut = self._lut
        ids = self._ids.astype(np.int32)
        ids = ids[..., 0] | (ids[..., 1] << 8) | (ids[..., 2] << 16)
        seg = lut[np.minimum(ids, scene.ngeom)][::-1]
        rgb = self._rgb[::-1].copy()
        depth = self._depth_d / (self._raw_depth[::-1].astype(np.float64) + self._depth_c)
        depth = np.minimum(depth, DEPTH_MAX).astype(np.float32)[..., None]
        return rgb, depth, np.ascontiguousarray(seg)

    def _free_context(self) -> None:
        if self._context is not None:
            self._gl.make_current()
            self._context.free()
            self._context = None

    def close(self) -> None:
        self._free_context()
        self._model = self._scene = None
