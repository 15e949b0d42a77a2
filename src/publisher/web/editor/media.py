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
  image twice is one file, and the output stays deterministic). The stored
  image is at most ``MAX_WIDTH`` pixels wide: twice a mail column, so the
  ``src`` that email clients use is an absolute URL of a suitable size.
- Beside it, resized WebP versions ``<name>-<width>.webp`` (``VARIANT_WIDTHS``
  up to the image's own width), which :func:`image_html` lists in ``srcset``
  with ``width`` and ``height``, so pages load the smallest that fits and do
  not shift while loading. Same input, same bytes (fixed encoder settings).
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
MAX_WIDTH = 1280
VARIANT_WIDTHS = (480, 960, 1280)
WEBP_QUALITY = 80


class NotAnImage(ValueError):
    """The upload is not an image we accept; the message says why."""


@dataclass(frozen=True)
class StoredImage:
    path: Path
    url: str
    width: int
    height: int
    variants: tuple[tuple[str, int], ...] = ()  # (url, width) of the WebP versions


def image_html(image: StoredImage, alt: str = "") -> str:
    """An ``<img>`` for the post body: srcset of the WebP versions, width and height."""
    srcset = ", ".join(f"{url} {width}w" for url, width in image.variants)
    escaped = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return (
        f'<img src="{image.url}" srcset="{srcset}" sizes="(max-width: {image.width}px) 100vw, '
        f'{image.width}px" width="{image.width}" height="{image.height}" alt="{escaped}" '
        'loading="lazy">'
    )


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
        return out.getvalue(), KINDS[kind], image.width, image.height
    # Upright first (EXIF orientation), then at most MAX_WIDTH wide, then encoded afresh.
    upright: Image.Image = ImageOps.exif_transpose(image) if kind == "JPEG" else image
    if upright.width > MAX_WIDTH:
        height = max(1, round(upright.height * MAX_WIDTH / upright.width))
        upright = upright.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    if kind == "JPEG":
        upright.convert("RGB").save(out, "JPEG", quality=90, optimize=True)
    elif kind == "PNG":
        upright.save(out, "PNG", optimize=True)
    else:
        upright.save(out, "WEBP", quality=90)
    return out.getvalue(), KINDS[kind], upright.width, upright.height


def webp_variants(clean: bytes, width: int) -> list[tuple[int, bytes]]:
    """The WebP versions of a cleaned image: each of VARIANT_WIDTHS below its width, and its width."""
    widths = sorted({w for w in VARIANT_WIDTHS if w < width} | {min(width, MAX_WIDTH)})
    variants = []
    with Image.open(io.BytesIO(clean)) as source:
        source.seek(0)
        frame = source.convert("RGBA" if source.mode in ("RGBA", "LA", "P") else "RGB")
    for target in widths:
        height = max(1, round(frame.height * target / frame.width))
        resized = (
            frame
            if target == frame.width
            else frame.resize((target, height), Image.Resampling.LANCZOS)
        )
        out = io.BytesIO()
        resized.save(out, "WEBP", quality=WEBP_QUALITY, method=4, exact=False)
        variants.append((target, out.getvalue()))
    return variants


def store_image(config: Config, data: bytes) -> StoredImage:
    clean, extension, width, height = clean_image(data, config.editor.max_upload_bytes)
    stem = hashlib.sha256(clean).hexdigest()[:24]
    folder = config.templates_path / MEDIA_DIR
    base = f"{config.site.base_url}{MEDIA_DIR}/"
    path = folder / f"{stem}.{extension}"
    if not path.exists():
        write_atomic(path, clean)
    variants = []
    for variant_width, webp in webp_variants(clean, width):
        name = f"{stem}-{variant_width}.webp"
        if not (folder / name).exists():
            write_atomic(folder / name, webp)
        variants.append((base + name, variant_width))
    # The stored width/height are the image's after the MAX_WIDTH cap.
    return StoredImage(path, base + path.name, width, height, tuple(variants))
