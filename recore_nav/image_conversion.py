"""sensor_msgs/Image and CompressedImage -> numpy RGB uint8 (H, W, 3) at the policy's image size.

Accepted encodings: rgb8, bgr8, rgba8, bgra8, mono8. The message is checked first (encoding,
sizes, buffer length against `step * height`), then converted by ROS 2's `cv_bridge` where it is
installed (and works: a broken one is dropped at its first failure), else by an exact numpy view
of `data` that honours `step` (row padding). All accepted encodings have 8-bit channels, so
`is_bigendian` does not change their bytes. Anything wrong is an
`ImageConversionError` with a one-line reason; the caller decides what to do (the node stops).

Compressed images (image_transport's `compressed` topic: jpeg or png, `format` such as
"bgr8; jpeg compressed bgr8" or plain "jpeg") are decoded by OpenCV; colour images decode to
OpenCV's BGR order, grey ones to one channel, both become RGB.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
}

# ROS 2's cv_bridge where installed. PyPI's `cv-bridge` is ROS 1's and fails under numpy 2: such a
# bridge fails on its first (already checked) image and is dropped for the numpy conversion.
try:
    from cv_bridge import CvBridge as _CvBridge
    _BRIDGE: Any = _CvBridge() if hasattr(_CvBridge, "imgmsg_to_cv2") else None
except Exception:  # any import failure just means: no cv_bridge here
    _BRIDGE = None


class ImageConversionError(ValueError):
    """An image message that cannot be used; the message is one line saying why."""


def check_image_msg(msg: Any) -> int:
    """Raise ImageConversionError unless the message is a usable image; return its channel count."""
    if msg.encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {msg.encoding!r} "
                                   f"(accepted: {', '.join(ENCODINGS)})")
    channels = ENCODINGS[msg.encoding][0]
    check_image_layout(msg, channels)
    return channels


def check_image_layout(msg: Any, channels: int, bytes_per_channel: int = 1) -> None:
    """Raise ImageConversionError unless sizes, row step and buffer length agree (any encoding)."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image {width}x{height}")
    if step < width * channels * bytes_per_channel:
        size = "" if bytes_per_channel == 1 else f" of {bytes_per_channel} bytes"
        raise ImageConversionError(f"row step {step} is smaller than width {width} x {channels} channels{size}")
    if len(msg.data) != step * height:
        raise ImageConversionError(f"buffer has {len(msg.data)} bytes, {msg.encoding} {width}x{height} "
                                   f"with step {step} needs {step * height}")


def image_msg_to_rgb(msg: Any) -> np.ndarray:
    """The image as uint8 (height, width, 3) RGB at its own size."""
    global _BRIDGE
    channels = check_image_msg(msg)
    if _BRIDGE is not None:
        try:
            rgb = _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            if rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8:
                return np.ascontiguousarray(rgb)
        except Exception:  # noqa: BLE001 - e.g. ROS 1's cv_bridge from PyPI under numpy 2
            pass
        # The message was checked above, so the bridge itself is broken here: stop using it.
        _BRIDGE = None
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    # A view of the message buffer (no copy), rows `step` bytes apart, padding cut off.
    rows = np.frombuffer(memoryview(msg.data), dtype=np.uint8).reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    conversion = ENCODINGS[msg.encoding][1]
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


# image_transport's compressed formats that OpenCV decodes to colour or grey pixels.
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """A sensor_msgs/CompressedImage as uint8 (height, width, 3) RGB at its own size."""
    fmt = msg.format.lower()
    if "compresseddepth" in fmt or not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ImageConversionError(f"unsupported compressed format {msg.format!r} "
                                   f"(accepted: {', '.join(COMPRESSED_FORMATS)})")
    if len(msg.data) == 0:
        raise ImageConversionError("compressed image has no data")
    pixels = cv2.imdecode(np.frombuffer(memoryview(msg.data), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageConversionError(f"cannot decode {len(msg.data)} bytes as {msg.format!r}")
    if pixels.dtype != np.uint8:
        raise ImageConversionError(f"compressed image has {pixels.dtype} pixels, 8-bit expected")
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    conversion = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(pixels.shape[2])
    if conversion is None:
        raise ImageConversionError(f"compressed image has {pixels.shape[2]} channels")
    return cv2.cvtColor(pixels, conversion)


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to (height, width, 3): area averaging when shrinking (no aliasing), linear when growing."""
    if rgb.shape[:2] == (height, width):
        return rgb
    shrinking = rgb.shape[0] >= height and rgb.shape[1] >= width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def image_msg_to_policy_rgb(msg: Any, height: int, width: int) -> np.ndarray:
    """An Image or CompressedImage message as the policy's input: uint8 (height, width, 3) RGB."""
    rgb = compressed_msg_to_rgb(msg) if hasattr(msg, "format") else image_msg_to_rgb(msg)
    return resize_rgb(rgb, height, width)
