"""sensor_msgs/Image -> RGB arrays: exact pixels for every accepted encoding, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import Image

from recore_nav.image_conversion import ImageConversionError, image_msg_to_policy_rgb, image_msg_to_rgb

RGB = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def make_msg(pixels: np.ndarray, encoding: str, padding: int = 0, is_bigendian: int = 0) -> Image:
    """An Image with `padding` junk bytes at the end of each row, as drivers with aligned rows send."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, padding), 0xAB, dtype=np.uint8)], axis=1)
    return Image(height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
                 step=padded.shape[1], data=padded.tobytes())


@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("encoding, pixels", [
    ("rgb8", RGB),
    ("bgr8", RGB[..., ::-1]),
    ("rgba8", np.concatenate([RGB, np.full((5, 7, 1), 9, np.uint8)], axis=2)),
    ("bgra8", np.concatenate([RGB[..., ::-1], np.full((5, 7, 1), 9, np.uint8)], axis=2)),
])
def test_colour_encodings_are_exact(encoding: str, pixels: np.ndarray, padding: int) -> None:
    rgb = image_msg_to_rgb(make_msg(np.ascontiguousarray(pixels), encoding, padding))
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, RGB)


def test_mono8_is_grey_in_all_channels_and_endianness_does_not_matter_for_bytes() -> None:
    grey = RGB[..., 0]
    for is_bigendian in (0, 1):
        rgb = image_msg_to_rgb(make_msg(grey[..., None], "mono8", padding=1, is_bigendian=is_bigendian))
        np.testing.assert_array_equal(rgb, np.repeat(grey[..., None], 3, axis=2))


def test_resized_to_the_policy_size_by_area_averaging() -> None:
    # A 4x4 image of 2x2 blocks shrinks to 2x2 exactly (area averaging of equal blocks).
    blocks = np.kron(np.array([[10, 200], [60, 120]], dtype=np.uint8), np.ones((2, 2), np.uint8))
    rgb = image_msg_to_policy_rgb(make_msg(np.repeat(blocks[..., None], 3, axis=2), "rgb8"), 2, 2)
    np.testing.assert_array_equal(rgb[..., 0], [[10, 200], [60, 120]])
    assert image_msg_to_policy_rgb(make_msg(RGB, "rgb8"), 64, 48).shape == (64, 48, 3)


@pytest.mark.parametrize("change, reason", [
    (dict(encoding="yuv422"), "unsupported encoding 'yuv422'"),
    (dict(encoding="16UC1"), "unsupported encoding '16UC1'"),
    (dict(step=20), "row step 20 is smaller than width 7 x 3 channels"),
    (dict(height=6), "buffer has 105 bytes, rgb8 7x6 with step 21 needs 126"),
    (dict(width=0), "empty image 0x5"),
])
def test_malformed_images_are_refused_with_a_reason(change: dict, reason: str) -> None:
    msg = make_msg(RGB, "rgb8")
    for name, value in change.items():
        setattr(msg, name, value)
    with pytest.raises(ImageConversionError, match=reason.replace("(", r"\(")):
        image_msg_to_rgb(msg)


def test_truncated_buffer_is_refused() -> None:
    msg = make_msg(RGB, "rgb8")
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(ImageConversionError, match="buffer has 104 bytes"):
        image_msg_to_rgb(msg)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_images_decode_to_rgb(fmt: str) -> None:
    import cv2
    from sensor_msgs.msg import CompressedImage

    from recore_nav.image_conversion import compressed_msg_to_rgb

    rgb = np.zeros((48, 80, 3), np.uint8)
    rgb[..., 0] = 200   # red, so a BGR/RGB swap shows
    ok, encoded = cv2.imencode(f".{fmt}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    decoded = compressed_msg_to_rgb(CompressedImage(format=f"bgr8; {fmt} compressed bgr8", data=encoded.tobytes()))
    assert decoded.shape == (48, 80, 3)
    assert abs(int(decoded[..., 0].mean()) - 200) <= 2 and decoded[..., 2].max() <= 3
    ok, grey = cv2.imencode(f".{fmt}", np.full((8, 8), 90, np.uint8))
    assert compressed_msg_to_rgb(CompressedImage(format=fmt, data=grey.tobytes())).shape == (8, 8, 3)


@pytest.mark.parametrize("fmt, data, reason", [
    ("16UC1; compressedDepth", b"x", "unsupported compressed format"),
    ("tiff", b"x", "unsupported compressed format"),
    ("jpeg", b"", "no data"),
    ("jpeg", b"garbage", "cannot decode 7 bytes"),
])
def test_bad_compressed_images_say_why(fmt: str, data: bytes, reason: str) -> None:
    from sensor_msgs.msg import CompressedImage

    from recore_nav.image_conversion import ImageConversionError, compressed_msg_to_rgb

    with pytest.raises(ImageConversionError, match=reason):
        compressed_msg_to_rgb(CompressedImage(format=fmt, data=data))
