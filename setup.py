"""recore_nav: an ament_python package that also installs with pip.

colcon builds it on a ROS 2 install (`colcon build`, then `ros2 launch recore_nav ...`);
pip installs it anywhere (`pip install -e ".[ros,sim,train,test]"`), with ROS 2 Jazzy from
its PyPI wheels where no ROS install is present.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "recore_nav"

# ROS 2 Jazzy from PyPI, for machines without a ROS install. Never mix distros in one env.
ROS_WHEELS = [
    "ros-jazzy-rclpy", "ros-jazzy-sensor-msgs", "ros-jazzy-geometry-msgs", "ros-jazzy-nav-msgs",
    "ros-jazzy-std-msgs", "ros-jazzy-rmw-fastrtps-cpp",
]
SIMULATOR = ["mujoco>=3.2", "gymnasium>=1.0", "scipy>=1.10", "imageio>=2.30", "imageio-ffmpeg>=0.5"]
# PyTorch stays pinned: an unpinned requirement pulls gigabytes of CUDA wheels on CPU machines.
TRAINING = SIMULATOR + [
    "torch==2.13.0", "onnx>=1.16", "onnxscript>=0.1", "tensorboard>=2.15", "tqdm>=4.60",
    "matplotlib>=3.7", "rosbags>=0.10", "ogbench>=1.2",
]


def share(*patterns: str) -> list[str]:
    return sorted(f for pattern in patterns for f in glob(pattern, recursive=True) if "." in f.rsplit("/", 1)[-1])


def model_data_files() -> list[tuple[str, list[str]]]:
    # One entry per bundle directory, so bundles keep their layout under share/.
    dirs = sorted({f.rsplit("/", 1)[0] for f in glob("models/**/*", recursive=True) if "." in f.rsplit("/", 1)[-1]})
    return [(f"share/{PACKAGE}/{d}", sorted(glob(f"{d}/*.*"))) for d in dirs]


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", share("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", share("config/*.yaml", "config/*.xml")),
        (f"share/{PACKAGE}/config/train", share("config/train/*.yaml")),
        *model_data_files(),
    ],
    python_requires=">=3.10",
    # onnxruntime: the plain CPU build unless the `gpu` extra asks for onnxruntime-gpu instead
    # (the two wheels provide the same module; install one of them).
    install_requires=["numpy>=1.24", "pyyaml>=6", "opencv-python-headless>=4.8"],
    extras_require={
        "cpu": ["onnxruntime>=1.17"],
        "gpu": ["onnxruntime-gpu>=1.17"],
        "ros": ROS_WHEELS + ["rosbags>=0.10"],   # rosbags: recore-nav-record writes MCAP bags without rosbag2
        "sim": SIMULATOR,
        "train": TRAINING,
        "test": ["pytest>=7"],
    },
    zip_safe=True,
    maintainer="recore_nav maintainers",
    maintainer_email="maintainers@recore-nav.org",
    description="Point-goal navigation with learned world-model policies (ReCoRe, WM-CRL) for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "navigation_node = recore_nav.nav_node:main",
            "sim_bridge_node = recore_nav.sim.bridge_node:main",
            "recore-nav-sim = recore_nav.launcher:sim_main",
            "recore-nav-robot = recore_nav.launcher:robot_main",
            "recore-nav-record = recore_nav.recorder:main",
        ],
    },
)
