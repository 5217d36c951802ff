"""Procedural indoor layouts and their traversability / geodesic maps.

A layout is plain geometry (no MuJoCo): rectangular rooms on a grid of columns and rows, walls
with doorways between neighbouring rooms (a random spanning tree, so every room is reachable,
plus a few extra doors for loops), and furniture-like obstacles (boxes and cylinders) inside
the rooms. `scene.py` turns it into MJCF; `TraversabilityMap` rasterises it, inflates the
obstacles by the robot radius and gives geodesic distances (16-connected Dijkstra on the grid).

World frame: x right, y up, metres; the layout's bounding box starts at (0, 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra


@dataclass(frozen=True)
class Rect:
    """Axis-aligned rectangle [x0, x1] x [y0, y1] (metres)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1


@dataclass(frozen=True)
class Box:
    """A solid axis-aligned box: centre (cx, cy), half sizes (hx, hy) in the plane, height (m)."""

    cx: float
    cy: float
    hx: float
    hy: float
    height: float


@dataclass(frozen=True)
class Cylinder:
    """A solid vertical cylinder standing on the floor."""

    cx: float
    cy: float
    radius: float
    height: float


Obstacle = Box | Cylinder


@dataclass(frozen=True)
class Layout:
    """The geometry of one scene. `rooms` are floor areas (their union is the floor, door
    openings included); `walls` and `obstacles` are solids on that floor."""

    rooms: tuple[Rect, ...]
    walls: tuple[Box, ...]
    obstacles: tuple[Obstacle, ...] = ()
    wall_height: float = 2.4

    @property
    def bounds(self) -> Rect:
        xs = [r.x0 for r in self.rooms] + [w.cx - w.hx for w in self.walls]
        ys = [r.y0 for r in self.rooms] + [w.cy - w.hy for w in self.walls]
        xe = [r.x1 for r in self.rooms] + [w.cx + w.hx for w in self.walls]
        ye = [r.y1 for r in self.rooms] + [w.cy + w.hy for w in self.walls]
        return Rect(min(xs), min(ys), max(xe), max(ye))


def enclosing_walls(room: Rect, thickness: float = 0.1, height: float = 2.4) -> list[Box]:
    """Four walls centred on a rectangle's edges (a hand-made layout's building block)."""
    t = thickness / 2.0
    w, h = room.x1 - room.x0, room.y1 - room.y0
    cx, cy = room.center
    return [
        Box(cx, room.y0, w / 2 + t, t, height), Box(cx, room.y1, w / 2 + t, t, height),
        Box(room.x0, cy, t, h / 2 + t, height), Box(room.x1, cy, t, h / 2 + t, height),
    ]


@dataclass(frozen=True)
class LayoutConfig:
    """How procedural layouts are drawn. Sizes in metres; ranges are (min, max)."""

    num_rooms: tuple[int, int] = (2, 4)
    room_size: tuple[float, float] = (3.0, 4.0)        # side of a room cell, centre to centre of walls
    door_width: tuple[float, float] = (0.8, 1.0)
    extra_door_probability: float = 0.3                 # a door on a shared wall outside the spanning tree
    obstacles_per_room: tuple[int, int] = (1, 3)
    wall_thickness: float = 0.1
    wall_height: float = 2.4
    robot_radius: float = 0.18
    clearance_margin: float = 0.02                      # added to the robot radius when inflating
    grid_resolution: float = 0.05

    def __post_init__(self) -> None:
        lo, hi = self.num_rooms
        if not 1 <= lo <= hi <= 16:
            raise ValueError(f"num_rooms must satisfy 1 <= min <= max <= 16, got {self.num_rooms}")
        if not 0.0 < self.door_width[0] <= self.door_width[1]:
            raise ValueError(f"door_width must be a range 0 < min <= max, got {self.door_width}")
        if self.door_width[0] <= 2.0 * self.inflation_radius + 2.0 * self.grid_resolution:
            raise ValueError(f"door_width min {self.door_width[0]} m is too narrow for a robot of radius "
                             f"{self.robot_radius} m (needs > {2 * self.inflation_radius + 2 * self.grid_resolution:.2f} m)")
        min_room = self.door_width[1] + 2.0 * self.wall_thickness + 2.0 * _DOOR_CORNER_GAP
        if not min_room <= self.room_size[0] <= self.room_size[1]:
            raise ValueError(f"room_size must be a range with min >= {min_room:.2f} m (door + walls), "
                             f"got {self.room_size}")
        if self.room_size[1] > 20.0:
            raise ValueError(f"room_size max {self.room_size[1]} m is larger than 20 m")
        if not 0 <= self.obstacles_per_room[0] <= self.obstacles_per_room[1] <= 10:
            raise ValueError(f"obstacles_per_room must satisfy 0 <= min <= max <= 10, got {self.obstacles_per_room}")
        if not 0.0 <= self.extra_door_probability <= 1.0:
            raise ValueError(f"extra_door_probability must be in [0, 1], got {self.extra_door_probability}")
        if not 0.0 < self.wall_thickness <= 0.5 or self.wall_height <= 0.0:
            raise ValueError("wall_thickness must be in (0, 0.5] m and wall_height > 0")
        if self.robot_radius <= 0.0 or self.clearance_margin < 0.0:
            raise ValueError("robot_radius must be > 0 and clearance_margin >= 0")
        if not 0.01 <= self.grid_resolution <= 0.2:
            raise ValueError(f"grid_resolution must be in [0.01, 0.2] m, got {self.grid_resolution}")

    @property
    def inflation_radius(self) -> float:
        return self.robot_radius + self.clearance_margin


_DOOR_CORNER_GAP = 0.2          # a doorway keeps this far from the room's corners
_DOOR_KEEPOUT = 0.6             # obstacles keep this far from a doorway's centre (plus their size)
_MAX_OBSTACLE_RETRIES = 20


def generate_layout(config: LayoutConfig, rng: np.random.Generator) -> tuple[Layout, TraversabilityMap]:
    """A random layout and its traversability map: rooms on a grid, joined by doorways, with
    obstacles; every room reachable (the map is built anyway to check that, so it is returned).

    The rooms are a random connected set of cells (grown from one cell); each grid column has its
    own width and each row its own height. Obstacles that would cut the free space apart are
    dropped, so the robot can reach every room.
    """
    n_rooms = int(rng.integers(config.num_rooms[0], config.num_rooms[1] + 1))
    cells = _grow_cells(n_rooms, rng)
    n_cols = max(c for c, _ in cells) + 1
    n_rows = max(r for _, r in cells) + 1
    col_x = np.concatenate([[0.0], np.cumsum(rng.uniform(*config.room_size, size=n_cols))])
    row_y = np.concatenate([[0.0], np.cumsum(rng.uniform(*config.room_size, size=n_rows))])
    rooms = {cell: Rect(col_x[cell[0]], row_y[cell[1]], col_x[cell[0] + 1], row_y[cell[1] + 1]) for cell in cells}

    # Doors: a random spanning tree over neighbouring rooms, plus extra doors for loops.
    shared = [(a, b) for a in cells for b in cells if a < b and abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1]
    tree = _random_spanning_tree(cells, shared, rng)
    doors = {edge for edge in shared if edge in tree or rng.random() < config.extra_door_probability}

    walls: list[Box] = []
    door_centres: list[tuple[float, float]] = []
    t, height = config.wall_thickness, config.wall_height
    for cell in cells:
        room = rooms[cell]
        # Each room draws its left and bottom walls, and its right/top walls only where no room
        # follows (that room draws the shared wall), so every wall is built once.
        for side in ("left", "bottom", "right", "top"):
            neighbour = {"left": (cell[0] - 1, cell[1]), "right": (cell[0] + 1, cell[1]),
                         "bottom": (cell[0], cell[1] - 1), "top": (cell[0], cell[1] + 1)}[side]
            if side in ("right", "top") and neighbour in rooms:
                continue
            horizontal = side in ("bottom", "top")
            fixed = {"left": room.x0, "right": room.x1, "bottom": room.y0, "top": room.y1}[side]
            start, end = (room.x0, room.x1) if horizontal else (room.y0, room.y1)
            edge = (min(cell, neighbour), max(cell, neighbour))
            gaps = []
            if edge in doors:
                width = float(rng.uniform(*config.door_width))
                lo, hi = start + t / 2 + _DOOR_CORNER_GAP + width / 2, end - t / 2 - _DOOR_CORNER_GAP - width / 2
                centre = float(rng.uniform(lo, hi))
                gaps.append((centre - width / 2, centre + width / 2))
                door_centres.append((centre, fixed) if horizontal else (fixed, centre))
            walls.extend(_wall_segments(horizontal, fixed, start, end, gaps, t, height))

    obstacles = [_random_obstacle(room, config, rng) for room in rooms.values()
                 for _ in range(int(rng.integers(config.obstacles_per_room[0], config.obstacles_per_room[1] + 1)))]
    obstacles = [o for o in obstacles if o is not None and not _blocks_door(o, door_centres)]

    room_list = tuple(rooms[c] for c in sorted(cells))
    for _ in range(_MAX_OBSTACLE_RETRIES):
        layout = Layout(room_list, tuple(walls), tuple(obstacles), wall_height=height)
        grid = TraversabilityMap(layout, config)
        if grid.every_room_reachable() or not obstacles:
            return layout, grid
        obstacles.pop(int(rng.integers(len(obstacles))))
    layout = Layout(room_list, tuple(walls), (), wall_height=height)
    return layout, TraversabilityMap(layout, config)


def _grow_cells(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """A random connected set of n grid cells, shifted to start at (0, 0)."""
    cells = [(0, 0)]
    while len(cells) < n:
        frontier = sorted({(c + dc, r + dr) for c, r in cells for dc, dr in ((1, 0), (-1, 0), (0, 1), (0, -1))}
                          - set(cells))
        cells.append(frontier[int(rng.integers(len(frontier)))])
    min_c, min_r = min(c for c, _ in cells), min(r for _, r in cells)
    return sorted((c - min_c, r - min_r) for c, r in cells)


def _random_spanning_tree(cells, edges, rng: np.random.Generator) -> set:
    """Random spanning tree (random-order Kruskal) of the room adjacency graph."""
    parent = {c: c for c in cells}

    def root(c):
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    tree = set()
    for i in rng.permutation(len(edges)):
        a, b = edges[i]
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb
            tree.add(edges[i])
    return tree


def _wall_segments(horizontal: bool, fixed: float, start: float, end: float,
                   gaps: list[tuple[float, float]], thickness: float, height: float) -> list[Box]:
    t = thickness / 2.0
    cuts = [start - t] + [v for gap in gaps for v in gap] + [end + t]
    boxes = []
    for a, b in zip(cuts[::2], cuts[1::2]):
        if b - a > 1e-6:
            mid, half = (a + b) / 2.0, (b - a) / 2.0
            boxes.append(Box(mid, fixed, half, t, height) if horizontal else Box(fixed, mid, t, half, height))
    return boxes


def _random_obstacle(room: Rect, config: LayoutConfig, rng: np.random.Generator) -> Obstacle | None:
    """A furniture-like obstacle (table/cabinet box or column/pot cylinder) inside a room."""
    inner = config.wall_thickness / 2.0 + 0.05
    if rng.random() < 0.6:
        hx, hy = rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.35)
        if rng.random() < 0.5:
            hx, hy = hy, hx
        x_lo, x_hi = room.x0 + inner + hx, room.x1 - inner - hx
        y_lo, y_hi = room.y0 + inner + hy, room.y1 - inner - hy
        if x_lo >= x_hi or y_lo >= y_hi:
            return None
        return Box(float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi)), float(hx), float(hy),
                   float(rng.uniform(0.4, 1.1)))
    radius = rng.uniform(0.1, 0.25)
    lo_x, hi_x = room.x0 + inner + radius, room.x1 - inner - radius
    lo_y, hi_y = room.y0 + inner + radius, room.y1 - inner - radius
    return Cylinder(float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y)), float(radius),
                    float(rng.uniform(0.5, 1.3)))


def _blocks_door(obstacle: Obstacle, door_centres: list[tuple[float, float]]) -> bool:
    size = math.hypot(obstacle.hx, obstacle.hy) if isinstance(obstacle, Box) else obstacle.radius
    return any(math.hypot(obstacle.cx - x, obstacle.cy - y) < _DOOR_KEEPOUT + size for x, y in door_centres)


# --------------------------------------------------------------------------------------------
# Traversability and geodesic distance

# Graph edges (each added in both directions): 4 straight, 4 diagonal and 8 knight moves
# (16-connected: at most 2.7% longer than the straight line, where 8-connected is 8% off).
# Each move lists the cells it passes through, which must be reachable too (no corner cutting).
_NEIGHBOURS = (
    (1, 0, ()), (0, 1, ()),
    (1, 1, ((1, 0), (0, 1))), (1, -1, ((1, 0), (0, -1))),
    (1, 2, ((0, 1), (1, 1))), (1, -2, ((0, -1), (1, -1))),
    (2, 1, ((1, 0), (1, 1))), (2, -1, ((1, 0), (1, -1))),
)


class TraversabilityMap:
    """The layout rasterised on a grid, with the obstacles inflated by the robot radius.

    `occupied[i, j]` (row i = y, column j = x) is True where a wall or obstacle touches the cell
    or where there is no floor; `reachable` are the cells where the robot's centre can be
    (clearance above `config.inflation_radius`) that lie in the largest connected free region.
    Geodesic distances are shortest 16-connected paths through reachable cells (a step may not
    cut a blocked corner), computed once per goal by `geodesic_field`.

    `from_free_space` makes the same map from a scene given as a grid of free floor instead of a
    layout (a scanned scene's traversability image); its `layout` is None.
    """

    layout: Layout | None

    def __init__(self, layout: Layout, config: LayoutConfig) -> None:
        self.layout = layout
        self.resolution = res = config.grid_resolution
        b = layout.bounds
        margin = 2 * res
        self.origin = (b.x0 - margin, b.y0 - margin)
        self.shape = (int(math.ceil((b.y1 - b.y0 + 2 * margin) / res)),
                      int(math.ceil((b.x1 - b.x0 + 2 * margin) / res)))
        xs = self.origin[0] + (np.arange(self.shape[1]) + 0.5) * res
        ys = self.origin[1] + (np.arange(self.shape[0]) + 0.5) * res

        # A cell is occupied if a solid overlaps it (its centre lies in the solid grown by half a
        # cell), so thin walls never vanish between cell centres.
        half = res / 2.0
        occupied = np.ones(self.shape, dtype=bool)
        for room in layout.rooms:
            occupied[np.ix_((ys >= room.y0) & (ys <= room.y1), (xs >= room.x0) & (xs <= room.x1))] = False
        for solid in (*layout.walls, *layout.obstacles):
            if isinstance(solid, Box):
                occupied[np.ix_(np.abs(ys - solid.cy) <= solid.hy + half, np.abs(xs - solid.cx) <= solid.hx + half)] = True
            else:
                occupied |= (np.hypot(xs[None, :] - solid.cx, ys[:, None] - solid.cy) <= solid.radius + half)
        self._index_free_space(occupied, config.inflation_radius)

    @classmethod
    def from_free_space(cls, free: np.ndarray, origin: tuple[float, float], resolution: float,
                        inflation_radius: float) -> TraversabilityMap:
        """The map of a scene given as free floor: `free[i, j]` (row i = y, column j = x) is True
        where the cell is floor with nothing on it; cell (i, j) spans [origin + (j, i) * resolution,
        origin + (j + 1, i + 1) * resolution). Everything else is occupied and inflated by
        `inflation_radius` as a layout's solids are."""
        free = np.asarray(free, dtype=bool)
        if free.ndim != 2:
            raise ValueError(f"free must be a 2-D grid, got shape {free.shape}")
        grid = cls.__new__(cls)
        grid.layout = None
        grid.resolution = float(resolution)
        grid.origin = (float(origin[0]), float(origin[1]))
        grid.shape = free.shape
        grid._index_free_space(~free, inflation_radius)
        return grid

    def _index_free_space(self, occupied: np.ndarray, inflation_radius: float) -> None:
        """`occupied`, the reachable cells where the robot's centre keeps `inflation_radius` from
        it, and the graph and look-ups geodesics need."""
        res = self.resolution
        half = res / 2.0
        self.occupied = occupied

        # Clearance of a cell centre ~ distance to the nearest occupied cell centre minus half a cell.
        clearance = ndimage.distance_transform_edt(~occupied) * res - half
        traversable = clearance > inflation_radius
        labels, n = ndimage.label(traversable, structure=np.ones((3, 3), dtype=bool))
        if n == 0:
            raise ValueError("the scene has no cell where the robot fits")
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        self.reachable = labels == int(np.argmax(sizes))
        self.traversable = traversable

        # Graph of reachable cells for Dijkstra (built once per map).
        index = np.full(self.shape, -1, dtype=np.int64)
        cells = np.flatnonzero(self.reachable)
        index.ravel()[cells] = np.arange(len(cells))
        self._cells = cells
        rows, cols, costs = [], [], []
        h, w = self.shape
        for di, dj, passes in _NEIGHBOURS:
            # every cell pair (i, j) -> (i + di, j + dj) that lies inside the grid
            i0, i1, j0, j1 = max(0, -di), h - max(0, di), max(0, -dj), w - max(0, dj)
            src = index[i0:i1, j0:j1]
            dst = index[i0 + di:i1 + di, j0 + dj:j1 + dj]
            ok = (src >= 0) & (dst >= 0)
            for pi, pj in passes:
                ok &= index[i0 + pi:i1 + pi, j0 + pj:j1 + pj] >= 0
            rows.append(src[ok])
            cols.append(dst[ok])
            costs.append(np.full(int(ok.sum()), math.hypot(di, dj) * res))
        r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(costs)
        n_cells = len(cells)
        self._graph = csr_matrix((np.concatenate([v, v]), (np.concatenate([r, c]), np.concatenate([c, r]))),
                                 shape=(n_cells, n_cells))
        self._index = index
        # For points off the reachable set: the nearest reachable cell and the distance to it.
        dist_out, nearest = ndimage.distance_transform_edt(~self.reachable, return_indices=True)
        self._nearest_flat = np.ravel_multi_index((nearest[0], nearest[1]), self.shape)
        self._dist_out = dist_out * res

    # -- coordinates --------------------------------------------------------------------------
    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """(row, col) of the cell containing a world point, clamped to the grid."""
        j = int(np.clip(math.floor((x - self.origin[0]) / self.resolution), 0, self.shape[1] - 1))
        i = int(np.clip(math.floor((y - self.origin[1]) / self.resolution), 0, self.shape[0] - 1))
        return i, j

    def cell_center(self, i: int, j: int) -> tuple[float, float]:
        return (self.origin[0] + (j + 0.5) * self.resolution, self.origin[1] + (i + 0.5) * self.resolution)

    def is_reachable(self, x: float, y: float) -> bool:
        return bool(self.reachable[self.cell_of(x, y)])

    def every_room_reachable(self) -> bool:
        """True if each room has reachable cells and almost all free space is one region (a map
        made from a layout)."""
        xs = self.origin[0] + (np.arange(self.shape[1]) + 0.5) * self.resolution
        ys = self.origin[1] + (np.arange(self.shape[0]) + 0.5) * self.resolution
        for room in self.layout.rooms:
            block = self.reachable[np.ix_((ys >= room.y0) & (ys <= room.y1), (xs >= room.x0) & (xs <= room.x1))]
            if not block.any():
                return False
        # Pockets cut off by obstacles (behind a table in a corner) are tolerated if tiny.
        return self.reachable.sum() >= 0.95 * self.traversable.sum()

    def geodesic_field(self, goal_x: float, goal_y: float) -> GeodesicField:
        """Shortest-path distances (m) from every cell to the goal (whose cell must be reachable)."""
        i, j = self.cell_of(goal_x, goal_y)
        node = self._index[i, j]
        if node < 0:
            raise ValueError(f"goal ({goal_x:.2f}, {goal_y:.2f}) is not on a reachable cell")
        dist = dijkstra(self._graph, directed=True, indices=int(node))
        field = np.full(self.shape, np.inf)
        field.ravel()[self._cells] = dist
        # Off the reachable set: distance to the nearest reachable cell plus its geodesic.
        filled = field.ravel()[self._nearest_flat] + self._dist_out
        return GeodesicField(self, field, filled, (goal_x, goal_y))


@dataclass
class GeodesicField:
    """Geodesic distance to one goal over a TraversabilityMap.

    `distance` is exact on reachable cells (inf elsewhere); `filled` extends it everywhere by the
    straight-line distance to the nearest reachable cell, and `distance_at` interpolates `filled`
    bilinearly so a moving robot sees a smooth reward signal.
    """

    grid: TraversabilityMap
    distance: np.ndarray
    filled: np.ndarray
    goal: tuple[float, float]
    _path_cache: dict = field(default_factory=dict, repr=False)

    def distance_at(self, x: float, y: float) -> float:
        g = self.grid
        fx = (x - g.origin[0]) / g.resolution - 0.5
        fy = (y - g.origin[1]) / g.resolution - 0.5
        j0 = int(np.clip(math.floor(fx), 0, g.shape[1] - 2))
        i0 = int(np.clip(math.floor(fy), 0, g.shape[0] - 2))
        tx, ty = float(np.clip(fx - j0, 0.0, 1.0)), float(np.clip(fy - i0, 0.0, 1.0))
        f = self.filled
        return float((f[i0, j0] * (1 - tx) + f[i0, j0 + 1] * tx) * (1 - ty)
                     + (f[i0 + 1, j0] * (1 - tx) + f[i0 + 1, j0 + 1] * tx) * ty)

    def path_from(self, x: float, y: float, max_length: float = math.inf) -> list[tuple[float, float]]:
        """Cell centres along steepest descent from (x, y) towards the goal (a shortest path),
        stopping at the goal cell or after `max_length` metres."""
        g = self.grid
        i, j = g.cell_of(x, y)
        if not g.reachable[i, j]:
            i, j = np.unravel_index(g._nearest_flat[i, j], g.shape)
        points = [g.cell_center(i, j)]
        length = 0.0
        d = self.distance
        h, w = g.shape
        while d[i, j] > 0.0 and length < max_length:
            best, step = d[i, j], None
            for di, dj, cost in _DESCENT_STEPS:
                ni, nj = i + di, j + dj
                if 0 <= ni < h and 0 <= nj < w and d[ni, nj] < best:
                    best, step = d[ni, nj], (ni, nj, cost)
            if step is None:
                break
            i, j = step[0], step[1]
            length += step[2] * g.resolution
            points.append(g.cell_center(i, j))
        return points


_DESCENT_STEPS = tuple((di, dj, math.hypot(di, dj)) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj)
