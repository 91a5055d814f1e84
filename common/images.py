"""Image conversions shared by everything that writes digits: quantisation and grids (numpy + Pillow)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def unit_to_uint8(images: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8 exactly as a PNG stores them: round, then clip to 0..255 (protocol P0)."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def grid_png(images: np.ndarray, rows: int) -> bytes:
    """uint8 [N, 28, 28] -> PNG bytes of a rows x (N / rows) grid with a 2-pixel gap."""
    count, height, width = images.shape
    cols = -(-count // rows)
    canvas = np.zeros((rows * (height + 2) + 2, cols * (width + 2) + 2), dtype=np.uint8)
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        top, left = 2 + row * (height + 2), 2 + col * (width + 2)
        canvas[top : top + height, left : left + width] = image
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 [28, 28] -> PNG bytes of one greyscale image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()
