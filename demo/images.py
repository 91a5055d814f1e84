"""Uploaded and drawn digits -> the 28x28 uint8 image the models score (light digit on black, as MNIST).

The rule, in order:
1. Only PNG or JPEG files are read, at most MAX_UPLOAD_PIXELS pixels (any width and height below that).
2. Transparent pixels count as white paper (the sketchpad draws dark strokes on a transparent canvas).
3. Greyscale (Pillow's "L").
4. Invert when the image looks like dark ink on light paper: the mean of its one-pixel border is
   above mid-grey (MNIST's border is black).
5. A 28x28 image is then used as it is. Any other size is framed as MNIST frames its digits: crop
   to the ink, scale the longer side to 20 pixels (Lanczos), and centre the ink's centre of mass
   in a black 28x28 image.
An image with no ink left after step 4 is an error (a blank drawing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.errors import UserError

MAX_UPLOAD_PIXELS = 25_000_000  # e.g. 5000 x 5000; decoding stays under ~100 MB
ACCEPTED_FORMATS = ("PNG", "JPEG")
SIDE = 28  # MNIST images are 28x28
DIGIT_BOX = 20  # MNIST scales each digit into a 20x20 box, then centres it by mass
INK_THRESHOLD = 32  # pixels brighter than this (after inversion) are ink


class ImageRejected(UserError):
    """An upload the demo cannot turn into a digit; one-line message for the user."""


def read_image_file(path: str | Path) -> np.ndarray:
    """A PNG/JPEG file -> uint8 [28, 28] by the rule above."""
    try:
        with Image.open(path) as image:
            if image.format not in ACCEPTED_FORMATS:
                raise ImageRejected(f"the upload is a {image.format} image; upload a PNG or JPEG")
            return to_mnist(image)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ImageRejected("the upload is not a PNG or JPEG image") from None
    except OSError:  # truncated or corrupt image data
        raise ImageRejected("the image file is damaged and cannot be decoded") from None


def to_mnist(image: Image.Image) -> np.ndarray:
    """A Pillow image of any mode, up to MAX_UPLOAD_PIXELS -> uint8 [28, 28] by steps 2-5 of the rule above."""
    width, height = image.size  # known before the pixels are decoded
    if width * height > MAX_UPLOAD_PIXELS:
        raise ImageRejected(f"the image is {width}x{height}; the limit is {MAX_UPLOAD_PIXELS:,} pixels")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        paper = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    grey = np.asarray(image.convert("L"))
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    if border.mean() > 127:
        grey = 255 - grey
    ink = grey > INK_THRESHOLD
    if not ink.any():
        raise ImageRejected("the image is blank: no digit found")
    if grey.shape == (SIDE, SIDE):
        return np.ascontiguousarray(grey, dtype=np.uint8)
    return _frame_like_mnist(grey, ink)


def _frame_like_mnist(grey: np.ndarray, ink: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = DIGIT_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    mass = float(digit.sum(dtype=np.float64))
    if mass == 0:  # strokes too thin to survive the downscaling
        raise ImageRejected("the digit vanishes at 28x28: draw it larger or with thicker strokes")
    centre_row = (digit.sum(axis=1) @ np.arange(digit.shape[0])) / mass
    centre_col = (digit.sum(axis=0) @ np.arange(digit.shape[1])) / mass
    top = int(np.clip(round((SIDE - 1) / 2 - centre_row), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round((SIDE - 1) / 2 - centre_col), 0, SIDE - digit.shape[1]))
    framed = np.zeros((SIDE, SIDE), dtype=np.uint8)
    framed[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return framed
