"""Every dependency key in package.xml resolves with rosdep on ROS 2 Jazzy's platforms.

Resolved as rosdep does: a ROS package released into Jazzy, or a rule in rosdistro's
rosdep/base.yaml or python.yaml for the platform (a list of apt packages, or pip packages) that is
not null for that release. The rules are an extract kept in test/data/rosdep_rules.yaml.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES = yaml.safe_load((Path(__file__).parent / "data" / "rosdep_rules.yaml").read_text())
# The platforms Jazzy targets (REP 2000): Ubuntu 24.04 and Debian 12.
PLATFORMS = [("ubuntu", "noble"), ("debian", "bookworm")]
DEPEND_TAGS = ("depend", "build_depend", "exec_depend", "test_depend", "buildtool_depend")


def package_keys() -> list[str]:
    root = ElementTree.parse(REPO_ROOT / "package.xml").getroot()
    return sorted({element.text.strip() for tag in DEPEND_TAGS for element in root.iter(tag)})


def resolve(key: str, os_name: str, release: str) -> list[str] | None:
    """What rosdep installs for the key on (os, release): packages (pip ones as 'pip:name'), or None."""
    if key in RULES["jazzy_packages"]:
        return [f"ros-jazzy-{key.replace('_', '-')}"]
    rule = RULES["rules"].get(key, {}).get(os_name)
    if isinstance(rule, dict) and not ("pip" in rule or "packages" in rule):   # per release
        rule = rule[release] if release in rule else rule.get("*")
    if rule is None:
        return None
    if isinstance(rule, dict) and "pip" in rule:
        return [f"pip:{name}" for name in rule["pip"]["packages"]]
    if isinstance(rule, dict):
        return list(rule["packages"])
    return list(rule)


def test_package_xml_declares_dependencies() -> None:
    keys = package_keys()
    assert {"rclpy", "sensor_msgs", "launch_ros", "python3-onnxruntime-pip"} <= set(keys)


@pytest.mark.parametrize("os_name,release", PLATFORMS)
def test_every_key_resolves(os_name: str, release: str) -> None:
    unresolved = [key for key in package_keys() if not resolve(key, os_name, release)]
    assert not unresolved, (f"rosdep keys without a rule for {os_name} {release}: {unresolved} "
                            "(rosdistro rosdep/base.yaml, python.yaml, jazzy/distribution.yaml)")


def test_resolver_follows_rosdep_rules() -> None:
    # A key rosdistro does not have, and one that is null on a release, do not resolve.
    assert resolve("libegl1", "ubuntu", "noble") is None
    assert resolve("python3-gymnasium-pip", "ubuntu", "focal") is None
    assert resolve("python3-gymnasium-pip", "ubuntu", "noble") == ["pip:gymnasium"]
    assert resolve("python3-numpy", "debian", "bookworm") == ["python3-numpy"]
