"""The point-goal task and the robot's interface, written once for every part of the package.

Simulators, the navigation node, training and export read these; none of them restates a value.
iGibson's point-goal task (`PointNavRandomTask`) defines the episode; the robot constants are the
speed limits an action of 1 means, the control rate the policy is trained and run at, and the
sensor conventions of the environment contract (`docs/architecture.md`).
"""

from __future__ import annotations

# Appearance splits every environment offers: train, held-out textures and lighting, and
# train appearance with sensor and actuation noise.
SPLITS = ("train", "ood", "sim2real")

# The episode.
SUCCESS_RADIUS = 0.36          # m, straight-line distance from the robot's centre to the goal
MAX_EPISODE_STEPS = 500
MIN_GOAL_DISTANCE = 1.0        # m, geodesic, start to goal
MAX_GOAL_DISTANCE = 10.0
SUCCESS_REWARD = 10.0
COLLISION_PENALTY = 0.1        # per step with a collision

# The robot: action (2,) in [-1, 1] times these limits is the (linear, angular) velocity command.
ACTION_DIM = 2
MAX_LINEAR_SPEED = 0.5         # m/s at action[0] = 1
MAX_ANGULAR_SPEED = 1.5        # rad/s at action[1] = 1
CONTROL_RATE_HZ = 10.0         # policy steps and velocity commands per second
CONTROL_DT = 1.0 / CONTROL_RATE_HZ

# Observations.
GOAL_DIM = 3                   # (distance m, cos bearing, sin bearing) in the robot frame
DEPTH_MAX = 10.0               # m; depth beyond it (or no surface) reads as DEPTH_MAX
SEG_CLASSES = ("floor", "wall", "obstacle", "other")   # `seg` ids 0..3; "other": ceiling, unlabelled
NUM_SEG_CLASSES = len(SEG_CLASSES)
