"""Decoding uploaded photos safely into OpenCV frames.

Pillow does the decoding: it reads the size from the header before any pixel is decoded (so a
decompression bomb is refused cheaply), applies the EXIF orientation that phones write, and converts
every mode (grayscale, palette, RGBA, 16-bit, CMYK JPEG) to RGB.
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Formats accepted for uploads (Pillow's format names).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

#: Default largest image accepted, in pixels (width x height): 25 megapixels, a 6000x4000 photo or more.
MAX_PIXELS = 25_000_000


class ImageError(ValueError):
    """An upload is not an image this app can read; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an uploaded image into a BGR uint8 frame ``(height, width, 3)``, upright per its EXIF tag.

    Raises:
        ImageError: empty data (400); not an image or a format outside ``ALLOWED_FORMATS`` (400); more
            than ``max_pixels`` pixels (413); a truncated or corrupt file (400).
    """
    if not data:
        raise ImageError("the upload is empty")
    try:
        with warnings.catch_warnings():
            # Pillow's own limit (about 89 megapixels) turns into an error here: the size check below
            # never gets an image that large to decode
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"the image has more pixels than the limit of {max_pixels:,}", 413) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("the upload is not an image (JPEG, PNG, WebP, BMP, GIF or TIFF)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:  # a header cut short
        raise ImageError(f"the image cannot be decoded: {exc}") from exc
    if image.format not in ALLOWED_FORMATS:
        raise ImageError(f"{image.format} images are not accepted; use JPEG, PNG, WebP, BMP, GIF or TIFF")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"the image has {width}x{height} pixels, more than the limit of {max_pixels:,}", 413)
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grayscale: scale to 8 bits
            array = np.asarray(image, dtype=np.float32)
            top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
            gray = np.clip(array * (255.0 / top), 0, 255).astype(np.uint8)
            return np.repeat(gray[..., np.newaxis], 3, axis=2)
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as exc:  # truncated or corrupt data
        raise ImageError(f"the image cannot be decoded: {exc}") from exc
    return np.ascontiguousarray(rgb[..., ::-1])
