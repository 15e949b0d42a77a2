"""Images from editors and writing apps: checked by content, cleaned, stored under the site.

- The bytes decide what a file is, never its name or its Content-Type: Pillow
  must open it as JPEG, PNG, GIF or WebP, within ``[editor].max_upload_bytes``
  and Pillow's pixel limit (decompression bombs are refused, not warned about).
- Every image is decoded and encoded again, which drops EXIF (GPS position,
  camera serial), XMP, ICC-free comments and any bytes appended after the
  image (polyglot files); JPEG orientation is applied first, so the picture
  stays upright without its EXIF tag.
- Stored as ``<templates>/static/media/<sha256 of the clean bytes>.<ext>``, which
  the build already copies to ``static/media/`` (content-addressed: the same
  image twice is one file, and the output stays deterministic).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from publisher.config import Config
from publisher.web.editor.posts import write_atomic

KINDS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
MEDIA_DIR = "static/media"
MAX_PIXELS = 40_000_000


class NotAnImage(ValueError):
    """The upload is not an image we accept; the message says why."""


@dataclass(frozen=True)
class StoredImage:
    path: Path
    url: str
    width: int
    height: int


def clean_image(data: bytes, limit: int) -> tuple[bytes, str, int, int]:
    """``(clean bytes, extension, width, height)`` or NotAnImage."""
    if len(data) > limit:
        raise NotAnImage(f"the file is larger than {limit:,} bytes ([editor].max_upload_bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            kind = image.format or ""
            if kind not in KINDS:
                raise NotAnImage("only JPEG, PNG, GIF and WebP images are accepted")
            if image.width * image.height > MAX_PIXELS:
                raise NotAnImage(f"the image has more than {MAX_PIXELS:,} pixels")
            image.load()
        except (
            UnidentifiedImageError,
            OSError,
            SyntaxError,
            Image.DecompressionBombWarning,
            Image.DecompressionBombError,
        ):
            raise NotAnImage("the file is not an image (checked by its content)") from None
    out = io.BytesIO()
    if kind == "GIF":
        image.save(out, "GIF", save_all=getattr(image, "n_frames", 1) > 1)
    else:
        upright = ImageOps.exif_transpose(image) if kind == "JPEG" else image
        if kind == "JPEG":
            upright.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
        elif kind == "PNG":
            upright.save(out, "PNG", optimize=True)
        else:
            upright.save(out, "WEBP", quality=90)
    return out.getvalue(), KINDS[kind], image.width, image.height


def store_image(config: Config, data: bytes) -> StoredImage:
    clean, extension, width, height = clean_image(data, config.editor.max_upload_bytes)
    name = f"{hashlib.sha256(clean).hexdigest()[:24]}.{extension}"
    path = config.templates_path / MEDIA_DIR / name
    if not path.exists():
        write_atomic(path, clean)
    return StoredImage(path, f"{config.site.base_url}{MEDIA_DIR}/{name}", width, height)
