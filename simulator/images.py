"""Placeholder product photos for the sandbox: the bot links product images under
`SHOP_IMAGE_BASE_URL`, which `make run` points here, so cards show a picture."""
from __future__ import annotations

import hashlib
import io
import textwrap
from functools import lru_cache
from typing import Optional

from PIL import Image, ImageDraw, ImageFont

SIZE = (600, 400)
COLOURS = {
    "black": (40, 40, 40), "white": (235, 235, 230), "grey": (150, 150, 150), "navy": (30, 45, 90),
    "green": (60, 120, 80), "sand": (210, 190, 150), "beige": (220, 200, 170), "natural": (225, 215, 190),
    "multicolour": (200, 90, 140),
}


def _colour(name: Optional[str], key: str) -> tuple:
    if name and name in COLOURS:
        return COLOURS[name]
    digest = hashlib.sha1(key.encode()).digest()
    return (80 + digest[0] % 120, 80 + digest[1] % 120, 80 + digest[2] % 120)


@lru_cache(maxsize=128)
def product_image(retailer_id: str, title: str, colour: Optional[str], fmt: str = "JPEG") -> bytes:
    """A plain tile in the product's first colour with its name."""
    background = _colour(colour, retailer_id)
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    ink = (20, 20, 20) if sum(background) > 450 else (250, 250, 250)
    font = ImageFont.load_default()
    lines = textwrap.wrap(title, 28) + ["", retailer_id]
    y = SIZE[1] // 2 - 10 * len(lines)
    for line in lines:
        width = draw.textlength(line, font=font)
        draw.text(((SIZE[0] - width) / 2, y), line, fill=ink, font=font)
        y += 20
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()
