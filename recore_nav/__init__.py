"""recore_nav: point-goal navigation from camera images with a learned world-model policy.

The robot-side package: the ONNX policy runtime, the navigation node, image and geometry
helpers, and the embedded MuJoCo simulator with its ROS 2 bridge. Nothing here imports torch.
"""

__version__ = "0.1.0"
