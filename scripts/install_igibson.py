"""iGibson 2.2.2 in a virtual environment of its own, for the iGibson worker process.

iGibson needs numpy<2 and gym, which the project's main venv (numpy 2, torch) cannot hold, so it
lives in a separate venv that a worker process runs in. Its PyPI sdist does not build as shipped on
Python 3.11 and a machine without CUDA; this script builds it with this project's fixes (the
`fix_*` functions below, each checking that the text it replaces is there):

    python3 scripts/install_igibson.py            # build (or reuse) the venv, progress on stderr
    python3 scripts/install_igibson.py --python   # ... then print the venv's python (stdout)
    python3 scripts/install_igibson.py --check    # "ready: <python>" (exit 0) or why not (exit 1); builds nothing
    python3 scripts/install_igibson.py --venv DIR # put the venv at DIR instead of the cache

The venv is cached per machine in `$XDG_CACHE_HOME/recore_nav/igibson/<key>/venv` (default
`~/.cache/...`), the key being a hash of this file and the interpreter, so a fresh clone reuses it
and a changed pin or fix rebuilds it. A `.complete` marker written last inside the venv says it was
built and verified; a venv without it is never used. The sdist and `build.log` stay in `<key>/`
(the build tree `src/` too, after a failure). The first build takes about 4 minutes on 2 cores
(mostly compiling crypto++ and the C++ renderer); a cached `--check` or `--python` about 0.1 s.

Needs cmake, g++ and make to build, Mesa's EGL (llvmpipe) to render; run as root, it installs them
with apt-get when they are missing. Stdlib only; any python3 >= 3.10 (the venv uses that python;
the pins are for CPython 3.11).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

IGIBSON = "igibson==2.2.2"
# Everything the venv holds, pinned, so that the cache key means something. The first group is what
# the build needs (pybind11 only for its headers), the second what `from igibson.envs.igibson_env
# import iGibsonEnv` and the renderer import, the third what those pull in. igibson itself goes in
# with --no-deps: its declared requirements name pybullet-svl (a fork that only builds from source),
# the GUI opencv, pandas, aenum, GPUtil, tqdm and urllib3, which that import does not need.
PINS = [
    "setuptools==69.5.1", "wheel==0.43.0", "pybind11==2.13.6",
    "numpy==1.26.4", "gym==0.26.2", "bddl==1.0.1", "pybullet==3.2.7", "PyYAML==6.0.2", "packaging==24.2",
    "scipy==1.13.1", "opencv-python-headless==4.10.0.84", "transforms3d==0.4.2", "Pillow==10.4.0",
    "trimesh==4.5.3", "py360convert==0.1.0", "ipython==8.29.0", "future==1.0.0", "six==1.16.0",
    "networkx==3.4.2", "freetype-py==2.5.1", "matplotlib==3.9.4", "h5py==3.12.1", "GitPython==3.1.43",
    "progressbar==2.5",
    # pulled in by gym, bddl (pytest, jupytext), ipython, matplotlib and GitPython
    "cloudpickle==3.1.3", "gym-notices==0.1.0", "pytest==9.2.0", "iniconfig==2.3.1", "pluggy==1.7.0",
    "jupytext==1.19.6", "markdown-it-py==4.3.0", "mdit-py-plugins==0.7.0", "mdurl==0.1.2", "nbformat==5.11.1",
    "fastjsonschema==2.22.3", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1", "attrs==26.1.0",
    "referencing==0.37.0", "rpds-py==2026.9.1", "jupyter_core==5.9.1", "platformdirs==4.14.9",
    "traitlets==5.16.1", "typing_extensions==4.16.0", "decorator==5.3.1", "jedi==0.20.1", "parso==0.8.7",
    "matplotlib-inline==0.2.2", "pexpect==4.9.0", "ptyprocess==0.7.0", "prompt_toolkit==3.0.53",
    "wcwidth==0.9.4", "Pygments==2.21.0", "stack-data==0.6.3", "asttokens==3.0.2", "executing==2.3.0",
    "pure_eval==0.2.4", "contourpy==1.3.1", "cycler==0.12.1", "fonttools==4.55.3", "kiwisolver==1.4.7",
    "pyparsing==3.2.0", "python-dateutil==2.9.0.post0", "gitdb==4.0.11", "smmap==5.0.1",
]
# Debian packages: the build tools, and Mesa's EGL with its software rasteriser (llvmpipe). The
# renderer loads libEGL at run time through its bundled glad loader, so no EGL/GL headers are needed.
APT_BUILD = ("cmake", "g++", "make")
APT_RUNTIME = ("libegl1", "libegl-mesa0", "libgl1-mesa-dri")
# What the renderer wants in the environment to come up headless on Mesa: EGL device 0 (without it,
# iGibson runs its device probe, finds no NVIDIA or Intel device, warns and falls back to 0).
RENDER_ENV = {"GIBSON_DEVICE_ID": "0"}


def say(message: str) -> None:
    print(f"[igibson] {message}", file=sys.stderr, flush=True)


class BuildError(Exception):
    """Why the build stopped, in one line; `log` is set when the build log says more."""

    def __init__(self, reason: str, log: Path | None = None):
        super().__init__(reason)
        self.log = log


# ---------------------------------------------------------------------------------------------
# Where things live


def cache_key() -> str:
    """Changes with this file's text and with the interpreter the venv is made from."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(sys.version.encode() + b"\0" + base.encode())
    return digest.hexdigest()[:16]


def work_dir(key: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "recore_nav" / "igibson" / key


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def marker(venv: Path) -> Path:
    return venv / ".complete"


def is_complete(venv: Path, key: str) -> bool:
    try:
        return marker(venv).read_text().split()[0] == key and os.access(venv_python(venv), os.X_OK)
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------------------------
# System packages


def missing_apt(packages: tuple[str, ...]) -> list[str]:
    """The Debian packages of `packages` that are not installed (tools by PATH where there is no dpkg)."""
    if shutil.which("dpkg-query") is None:
        return [p for p in packages if p in APT_BUILD and shutil.which(p) is None]
    missing = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], check=False, capture_output=True,
                                text=True)
        if result.returncode != 0 or not result.stdout.endswith(" installed"):
            missing.append(package)
    return missing


def ensure_apt(packages: tuple[str, ...], log: Path) -> None:
    missing = missing_apt(packages)
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BuildError(f"missing system packages: {' '.join(missing)} (apt-get install {' '.join(missing)})")
    say(f"apt-get install {' '.join(missing)}")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        run(command, log, env=env)
    except BuildError:  # stale package lists: refresh once
        run(["apt-get", "update"], log, env=env)
        run(command, log, env=env)


# ---------------------------------------------------------------------------------------------
# The sdist fixes. Each one names what it fixes and fails if the sdist is not the one it was
# written against.


def replace_once(src: Path, relative: str, old: str, new: str, why: str) -> None:
    path = src / relative
    text = path.read_text(encoding="utf-8")
    if text.count(old) != 1:
        raise BuildError(f"fix '{why}': {relative} does not contain {old.strip()!r} exactly once")
    path.write_text(text.replace(old, new), encoding="utf-8")


def fix_pybind11_headers(src: Path, venv: Path) -> None:
    """The bundled pybind11 2.6 headers do not compile against Python 3.11's C API (frame and
    code object internals moved); pybind11 2.13's do. Only `include/pybind11` is swapped: the bundled
    CMake scripts stay (the next fix repairs the one line of them that 3.11 breaks)."""
    bundled = src / "igibson/render/pybind11/include/pybind11"
    if not (bundled / "pybind11.h").is_file():
        raise BuildError("fix 'pybind11 headers': no igibson/render/pybind11/include/pybind11/pybind11.h")
    result = subprocess.run([str(venv_python(venv)), "-c", "import pybind11; print(pybind11.get_include())"],
                            check=False, capture_output=True, text=True)
    fresh = Path(result.stdout.strip()) / "pybind11"
    if result.returncode != 0 or not (fresh / "pybind11.h").is_file():
        raise BuildError(f"fix 'pybind11 headers': the venv's pybind11 has no headers ({result.stderr.strip()[-200:]})")
    shutil.rmtree(bundled)
    shutil.copytree(fresh, bundled)


def fix_extension_suffix(src: Path) -> None:
    """The bundled FindPythonLibsNew.cmake asks sysconfig for `SO`, which Python 3.11 no longer
    sets (None), so the modules would be named `EGLRendererContextNone`; `EXT_SUFFIX` is the name."""
    replace_once(src, "igibson/render/pybind11/tools/FindPythonLibsNew.cmake",
                 "print(s.get_config_var('SO'));", "print(s.get_config_var('EXT_SUFFIX'));", "extension suffix")


def fix_no_cuda(src: Path) -> None:
    """CMake >= 3.17 looks for a CUDA toolkit and, when it finds one, builds the CUDA-GL interop
    with the deprecated FindCUDA, which fails on current toolkits. The worker renders on the CPU:
    never look, never use it."""
    replace_once(src, "igibson/render/CMakeLists.txt", "  find_package(CUDAToolkit)\n",
                 "  set(CUDAToolkit_FOUND FALSE)  # recore_nav: no CUDA interop\n", "no CUDA (find)")
    replace_once(src, "igibson/render/CMakeLists.txt", "include_directories(glad)\n",
                 "set(USE_CUDA FALSE)  # recore_nav: no CUDA interop, whatever the branches above said\n"
                 "include_directories(glad)\n", "no CUDA (use)")


def fix_iostream_include(src: Path) -> None:
    """egl_mesh_renderer.cpp uses std::cout without including <iostream> (older libstdc++ headers
    pulled it in through <sstream>; GCC 12's do not)."""
    replace_once(src, "igibson/render/cpp/egl_mesh_renderer.cpp", "#include <sstream>\n",
                 "#include <sstream>\n#include <iostream>\n", "iostream include")


def fix_cryptopp_tests(src: Path) -> None:
    """crypto++ builds its test program (cryptest) and a shared library by default; iGibson links
    only its static library. Turning both off saves a good part of the compile."""
    replace_once(src, "igibson/render/CMakeLists.txt", "add_subdirectory(cryptopp)\n",
                 'set(BUILD_TESTING OFF CACHE BOOL "" FORCE)  # recore_nav: no crypto++ tests\n'
                 'set(BUILD_SHARED OFF CACHE BOOL "" FORCE)  # recore_nav: only cryptopp-static is linked\n'
                 "add_subdirectory(cryptopp)\n", "crypto++ tests")


def fix_collections_abc(src: Path) -> None:
    """`collections.Iterable` and `collections.Mapping` were removed in Python 3.10 (they live in
    collections.abc); controller_base.py is imported by every robot, the motion planners by the
    motion-planning wrapper."""
    replace_once(src, "igibson/controllers/controller_base.py", "from collections import Iterable\n",
                 "from collections.abc import Iterable\n", "collections.abc")
    for planner in ("graph", "prm"):
        replace_once(src, f"igibson/external/motion/motion_planners/{planner}.py",
                     "from collections import namedtuple, Mapping\n",
                     "from collections import namedtuple\nfrom collections.abc import Mapping\n", "collections.abc")
    for planner in ("multi_rrt", "star_roadmap"):
        replace_once(src, f"igibson/external/motion/motion_planners/{planner}.py", "from collections import Mapping\n",
                     "from collections.abc import Mapping\n", "collections.abc")


def fix_np_float(src: Path) -> None:
    """`np.float` (an alias of float) was removed in numpy 1.24; the segmentation colouring uses it."""
    replace_once(src, "igibson/utils/vision_utils.py", ".astype(np.float)", ".astype(float)", "np.float")
    replace_once(src, "igibson/utils/data_utils/ext_scene/scripts/utils/utils.py", "np.finfo(np.float)",
                 "np.finfo(float)", "np.float")


def apply_fixes(src: Path, venv: Path) -> None:
    fix_pybind11_headers(src, venv)
    fix_extension_suffix(src)
    fix_no_cuda(src)
    fix_iostream_include(src)
    fix_cryptopp_tests(src)
    fix_collections_abc(src)
    fix_np_float(src)


# ---------------------------------------------------------------------------------------------
# The build


def run(command: list[str], log: Path, what: str = "", **kwargs) -> None:
    """Run `command` with its output appended to the build log; BuildError naming `what` if it fails."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, check=False, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                **kwargs)
    if result.returncode != 0:
        what = what or " ".join(command[:4]).splitlines()[0][:120]
        raise BuildError(f"{what} (exit {result.returncode})", log)


def build_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MAKEFLAGS", f"-j{os.cpu_count() or 2}")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for name in ("CUDACXX", "CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT"):  # belt and braces: no CUDA
        env.pop(name, None)
    return env


VERIFY = r"""
import os, sys, numpy as np
import igibson
from igibson.envs.igibson_env import iGibsonEnv
from igibson.render.mesh_renderer.mesh_renderer_cpu import MeshRenderer
from igibson.render.mesh_renderer.mesh_renderer_settings import MeshRendererSettings
settings = MeshRendererSettings(glsl_version_override=450, enable_pbr=False, enable_shadow=False)
renderer = MeshRenderer(width=32, height=24, rendering_settings=settings)
renderer.set_camera([1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
rgb, xyz = renderer.render(modes=("rgb", "3d"))
assert rgb.shape == (24, 32, 4) and xyz.shape == (24, 32, 4), (rgb.shape, xyz.shape)
print("verified:", igibson.__version__, renderer.r.getstring_meshrenderer().split("\n")[0], np.__version__)
renderer.release()
"""


def verify(venv: Path, log: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="igibson-verify-") as tmp:
        # Empty data paths: the check must not depend on (or be broken by) assets elsewhere.
        env = dict(os.environ, **RENDER_ENV, IG_LOG_LEVEL="WARNING", GIBSON_ASSETS_PATH=f"{tmp}/assets",
                   GIBSON_DATASET_PATH=f"{tmp}/g_dataset", IGIBSON_DATASET_PATH=f"{tmp}/ig_dataset")
        run([str(venv_python(venv)), "-c", VERIFY], log, "verification in the new venv", env=env, cwd=tmp)


def build(venv: Path, key: str, work: Path) -> None:
    log = work / "build.log"
    log.write_text(f"# install_igibson {IGIBSON} key {key} python {sys.version.split()[0]}\n")
    started = time.monotonic()

    def step(message: str) -> None:
        say(f"{time.monotonic() - started:4.0f} s  {message}")

    say(f"building {IGIBSON} into {venv} (log: {log})")
    ensure_apt(APT_BUILD + APT_RUNTIME, log)

    if venv.exists():
        shutil.rmtree(venv)
    step("creating the venv and installing the pinned requirements")
    run([sys.executable, "-m", "venv", str(venv)], log, "python -m venv (Debian: apt-get install python3-venv)")
    python = str(venv_python(venv))
    env = build_env()
    run([python, "-m", "pip", "install", "--no-input", *PINS], log, "pip install of the pinned requirements", env=env)

    sdist_dir = work / "sdist"
    sdists = sorted(sdist_dir.glob("igibson-*.tar.gz")) if sdist_dir.is_dir() else []
    if not sdists:
        step(f"downloading the {IGIBSON} sdist")
        run([python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
             "-d", str(sdist_dir), IGIBSON], log, f"pip download of the {IGIBSON} sdist", env=env)
        sdists = sorted(sdist_dir.glob("igibson-*.tar.gz"))
    if len(sdists) != 1:
        raise BuildError(f"expected one igibson sdist in {sdist_dir}, found {len(sdists)}")

    src_root = work / "src"
    if src_root.exists():
        shutil.rmtree(src_root)
    with tarfile.open(sdists[0]) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(src_root, filter="data")
        else:
            archive.extractall(src_root)
    (src,) = [p for p in src_root.iterdir() if p.is_dir()]
    step("applying the fixes")
    apply_fixes(src, venv)

    step("compiling the renderer (a few minutes)")
    run([python, "-m", "pip", "install", "--no-input", "--no-deps", "--no-build-isolation", "-v", str(src)], log,
        "the iGibson build", env=env)
    step("verifying: import, iGibsonEnv, one headless frame")
    verify(venv, log)
    shutil.rmtree(src_root, ignore_errors=True)  # the build tree is ~0.2 GB; the sdist and log stay
    marker(venv).write_text(f"{key}\n{IGIBSON} built in {time.monotonic() - started:.0f} s\n")
    step("built")


def reason_not_ready(venv: Path, key: str) -> str | None:
    if sys.version_info < (3, 10):
        return f"needs python >= 3.10 (this is {sys.version.split()[0]})"
    if not is_complete(venv, key):
        if venv.exists():
            return f"{venv} is not a complete build for this script (no matching .complete); run {sys.argv[0]}"
        return f"iGibson is not built for this script and python; run {sys.argv[0]} (a few minutes)"
    missing = missing_apt(APT_RUNTIME)
    if missing:
        return f"missing system packages for rendering: {' '.join(missing)}"
    return None


def ensure_built(venv: Path, key: str, work: Path) -> Path:
    """The venv's python, after building it if needed (one build at a time per key)."""
    work.mkdir(parents=True, exist_ok=True)
    with (work / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_complete(venv, key):
            if venv.exists() and not (venv / "pyvenv.cfg").exists() and any(venv.iterdir()):
                raise BuildError(f"{venv} exists and is not a venv: will not overwrite it")
            try:
                build(venv, key, work)
            except BuildError:
                raise
            except Exception as error:  # unexpected: report it like a build failure, with the log
                raise BuildError(f"{type(error).__name__}: {error}", work / "build.log") from error
    return venv_python(venv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="say whether the venv is ready; build nothing")
    mode.add_argument("--python", action="store_true", help="print the venv's python (building it if needed)")
    parser.add_argument("--venv", type=Path, help="where the venv goes (default: the per-machine cache)")
    args = parser.parse_args(argv)

    key = cache_key()
    work = work_dir(key)
    venv = (args.venv.expanduser().absolute() if args.venv else work / "venv")
    if args.check:
        reason = reason_not_ready(venv, key)
        print(reason if reason else f"ready: {venv_python(venv)}")
        return 1 if reason else 0
    if sys.version_info < (3, 10):
        say(f"needs python >= 3.10 (this is {sys.version.split()[0]})")
        return 1
    try:
        python = ensure_built(venv, key, work)
    except BuildError as error:
        say(f"failed: {error}")
        if error.log is not None and error.log.is_file():
            say(f"log: {error.log}; its last lines:")
            for line in error.log.read_text(errors="replace").splitlines()[-25:]:
                print(f"    {line}", file=sys.stderr)
        return 1
    if args.python:
        print(python)
    else:
        say(f"ready: {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
