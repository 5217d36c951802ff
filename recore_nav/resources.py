"""Where the package's shared files (config/, models/, launch/) are on this machine.

On a colcon install they are in the ament share directory; on a pip install in
`<prefix>/share/recore_nav`; in a source checkout (editable install, tests) next to the package.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "recore_nav"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The first existing share directory: ament index, then the Python prefix, then the checkout."""
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)))
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (pip-only machine)
            pass
    except ImportError:
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    for candidate in candidates:
        if (candidate / "config").is_dir():
            return candidate
    return _SOURCE_ROOT


def share_path(*parts: str) -> Path:
    """A path inside the share directory, e.g. share_path("models", "recore_pointnav")."""
    # A checkout's files win over an older installed copy when running from the source tree.
    source = _SOURCE_ROOT.joinpath(*parts)
    if (_SOURCE_ROOT / "package.xml").is_file() and source.exists():
        return source
    return share_dir().joinpath(*parts)


def default_model_dir() -> Path:
    return share_path("models", "recore_pointnav")
