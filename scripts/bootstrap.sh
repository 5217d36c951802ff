#!/usr/bin/env bash
# Install what recore_nav needs on a fresh Debian/Ubuntu machine, then run the demo or the tests.
#   bash scripts/bootstrap.sh demo [recore-nav-sim args]   # embedded simulator + shipped policy over ROS 2
#   bash scripts/bootstrap.sh test [pytest args]           # the test suite (iGibson included)
#   bash scripts/bootstrap.sh igibson                      # only build iGibson for --env igibson
# System packages (Mesa EGL/OSMesa for offscreen rendering) come from apt when run as root.
# ROS 2: a sourced ROS install ($ROS_DISTRO) is used as it is; otherwise ROS 2 Jazzy's PyPI wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"; shift || true

APT_PACKAGES=(libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6)
# Tests build ROS 2's launch tools and message packages without wheels from ../shared (see below).
SHARED_ROS="${RECORE_NAV_ROS_FROM_SOURCE:-../shared/ros2-from-source}"
[ "$mode" = test ] && [ -d "$SHARED_ROS" ] && [ -z "${ROS_DISTRO:-}" ] && APT_PACKAGES+=(cmake g++)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[bootstrap] apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[bootstrap] missing system packages (install them as root): ${missing[*]}" >&2
  fi
fi

VENV="${RECORE_NAV_VENV:-.venv}"
extras="cpu,sim"
venv_flags=()
if [ -n "${ROS_DISTRO:-}" ]; then
  venv_flags+=(--system-site-packages)   # rclpy and messages from the ROS install
else
  extras+=",ros"
fi
[ "$mode" = test ] && extras+=",train,test"
[ -x "$VENV/bin/python" ] || python3 -m venv "${venv_flags[@]}" "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
echo "[bootstrap] pip install -e .[$extras]"
"$VENV/bin/python" -m pip install -q -e ".[$extras]"

if [ "$mode" = test ] || [ "$mode" = igibson ]; then
  # iGibson 2.2.2 in a venv of its own (numpy<2, gym), built from its sdist with this project's
  # fixes; minutes the first time, cached per machine. The --env igibson tests need it.
  echo "[bootstrap] iGibson for --env igibson (scripts/install_igibson.py)"
  "$VENV/bin/python" scripts/install_igibson.py
fi

if [ "$mode" = test ] && [ -z "${ROS_DISTRO:-}" ]; then
  # launch, launch_ros, ros2cli, tf2_msgs, nav2_msgs, composition_interfaces and this package built
  # by colcon, so the launch files, TF goals and the NavigateToPose action are tested for real
  # (minutes the first time, cached per machine). Without ../shared those tests skip, saying why.
  if reason=$("$VENV/bin/python" scripts/ros_from_source.py --check); then
    echo "[bootstrap] ROS 2 workspace for the launch, TF and action tests (scripts/ros_from_source.py)"
    setup=$("$VENV/bin/python" scripts/ros_from_source.py --shell)
    eval "$setup"
  else
    echo "[bootstrap] no ROS 2 workspace for the launch, TF and action tests: $reason"
  fi
fi

export MUJOCO_GL="${MUJOCO_GL:-egl}"
export ROS_LOG_DIR="${ROS_LOG_DIR:-$PWD/.ros_log}"
case "$mode" in
  demo) exec "$VENV/bin/recore-nav-sim" "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q "$@" ;;
  igibson) exit 0 ;;
  *) echo "usage: $0 demo|test|igibson [args]" >&2; exit 2 ;;
esac
