"""Decoding uploaded photos safely into OpenCV frames.

Pillow does the decoding: it reads the size from the header before any pixel is decoded (so a
decompression bomb is refused cheaply), decodes a large JPEG straight to a smaller size (its DCT scaling,
``Image.draft``: a quarter of the size costs about a sixteenth of the work and memory), applies the EXIF
orientation that phones write, and converts every mode (grayscale, palette, RGBA, 16-bit, CMYK JPEG)
to RGB.
"""

from __future__ import annotations

import io
import math
import struct
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Formats accepted for uploads (Pillow's format names).
ALLOWED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF")
#: Pillow's names of JPEG files: "MPO" is a JPEG that indexes further pictures (CIPA DC-007 Multi-Picture
#: Format: many phones and cameras write it); its first picture, the photo, is decoded.
JPEG_FORMATS = ("JPEG", "MPO")

#: Default largest image accepted, in pixels (width x height): 12 megapixels, a 4000x3000 photo.
MAX_PIXELS = 12_000_000

#: The most pixels an upload limit may allow: Pillow refuses larger images itself (its decompression-bomb
#: threshold, ``Image.MAX_IMAGE_PIXELS``).
PILLOW_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS)

#: Default pixels an upload is decoded (or scaled) to at most: a 12-megapixel photo is searched at 0.58 of
#: its sides, so its faces of 42 px and more keep the 24 px that the face detector needs.
WORKING_PIXELS = 4_000_000


class DecodedImage(NamedTuple):
    """An upload decoded: ``frame`` BGR uint8 ``(h, w, 3)``, upright, at most the working size; ``width``
    and ``height`` of the upright image as uploaded (``frame`` may be smaller: scale boxes by
    ``width / frame.shape[1]``)."""

    frame: np.ndarray
    width: int
    height: int


class ImageError(ValueError):
    """An upload is not an image this app can read; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, working_pixels: int | None = None) -> DecodedImage:
    """Decode an uploaded image into a BGR uint8 frame, upright per its EXIF tag.

    Args:
        data: the file's bytes.
        max_pixels: a larger image (by its header) is refused; so is one over Pillow's own limit
            (``PILLOW_MAX_PIXELS``), whatever this says.
        working_pixels: a larger image is decoded to about this many pixels or a little more (JPEG:
            Pillow's DCT scaling, by 1/2, 1/4 or 1/8) and then scaled down to it; ``None``: full size.

    Raises:
        ImageError: empty data (400); not an image or a format outside ``ALLOWED_FORMATS`` (400); more
            than ``max_pixels`` pixels (413); a truncated or corrupt file (400).
    """
    if not data:
        raise ImageError("the upload is empty")
    try:
        # no warnings.catch_warnings() here: it swaps the process's warning filters, which is not thread-safe
        # and resets every module's record of the warnings already shown, so a warning that should appear
        # once per process (a malformed EXIF block) came back with every upload. Pillow's own limit (about
        # 89 megapixels: a DecompressionBombWarning, twice that an error) is enforced by the size check below.
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"the image has more pixels than the limit of {min(max_pixels, PILLOW_MAX_PIXELS):,}",
                         413) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("the upload is not an image (JPEG, PNG, WebP, BMP, GIF or TIFF)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:  # a header cut short
        raise ImageError(f"the image cannot be decoded: {exc}") from exc
    if image.format not in ALLOWED_FORMATS:
        raise ImageError(f"{image.format} images are not accepted; use JPEG, PNG, WebP, BMP, GIF or TIFF")
    width, height = image.size
    if width * height > min(max_pixels, PILLOW_MAX_PIXELS):
        raise ImageError(f"the image has {width}x{height} pixels, more than the limit of "
                         f"{min(max_pixels, PILLOW_MAX_PIXELS):,}", 413)
    scale = 1.0 if working_pixels is None or width * height <= working_pixels else math.sqrt(
        working_pixels / (width * height))
    try:
        if scale < 1.0 and image.format in JPEG_FORMATS:  # decode at 1/2, 1/4 or 1/8 of the size, not below the target
            image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
        sideways = image.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientations that turn by 90 degrees
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit grayscale: scale to 8 bits
            array = np.nan_to_num(np.asarray(image, dtype=np.float32))
            if image.mode == "F":  # floats: in [0, 1], in [0, 255], or scaled by their maximum
                top = 1.0 if array.max() <= 1 else 255.0 if array.max() <= 255 else float(array.max())
            else:
                top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
            gray = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
            frame = np.repeat(gray[..., np.newaxis], 3, axis=2)
        else:
            frame = np.ascontiguousarray(np.asarray(image.convert("RGB"))[..., ::-1])
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:  # truncated or corrupt data
        raise ImageError(f"the image cannot be decoded: {exc}") from exc
    if sideways:
        width, height = height, width
    if scale < 1.0 and frame.shape[0] * frame.shape[1] > working_pixels * 1.01:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return DecodedImage(frame, width, height)
