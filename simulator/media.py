"""Customer media (photos, voice notes, files) as Meta hosts them.

A media message the customer sends carries only an id; the bot (e.g. the agent desk)
fetches ``GET /{version}/{media_id}`` for a short-lived URL and then downloads that URL,
both with its access token. The simulator keeps placeholder bytes for every media id it
generated, so those two calls return something real: a JPEG tile for photos, a one-page
PDF for documents, small files with the right magic bytes for the other types.
"""
from __future__ import annotations

import base64
import hashlib
import io
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from PIL import Image

from .images import product_image

#: Oldest media are forgotten beyond this, so a long-running sandbox stays small.
MAX_MEDIA_FILES = 1000


@dataclass
class MediaFile:
    id: str
    mime_type: str
    content: bytes = field(repr=False)
    #: Opaque part of the download URL (Meta's lookaside URLs carry a hash like it).
    url_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def sha256_hex(self) -> str:
        """As in the media URL answer of the Graph API."""
        return hashlib.sha256(self.content).hexdigest()

    @property
    def sha256_b64(self) -> str:
        """As in the inbound message webhook."""
        return base64.b64encode(hashlib.sha256(self.content).digest()).decode()


def _pdf(label: str) -> bytes:
    """A minimal, valid one-page PDF showing ``label``."""
    text = label.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 18 Tf 72 720 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _webp(key: str, label: str) -> bytes:
    jpeg = product_image(key, label, None, "JPEG")
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).resize((256, 256)).save(out, format="WEBP")
    return out.getvalue()


def placeholder_content(kind: str, mime_type: str, media_id: str, label: Optional[str] = None) -> bytes:
    """Bytes standing in for what the customer sent, of the right format for the type."""
    mime = mime_type.split(";")[0].strip().lower()
    title = label or {"image": "Customer photo", "sticker": "Sticker"}.get(kind, kind.title())
    if mime in ("image/jpeg", "image/jpg"):
        return product_image(media_id, title, None, "JPEG")
    if mime == "image/png":
        return product_image(media_id, title, None, "PNG")
    if mime == "image/webp":
        return _webp(media_id, title)
    if mime == "application/pdf":
        return _pdf(label or "Document from the customer")
    if mime.startswith("audio/ogg"):
        # An Ogg page header (capture pattern "OggS") with an Opus identification header.
        return b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    if mime == "video/mp4":
        return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom\x00\x00\x00\x08free"
    return f"placeholder {kind} {media_id}\n".encode()


class MediaStore:
    """Media ids -> files, oldest dropped beyond :data:`MAX_MEDIA_FILES`."""

    def __init__(self, max_files: int = MAX_MEDIA_FILES) -> None:
        self._files: "OrderedDict[str, MediaFile]" = OrderedDict()
        self._max_files = max_files

    def add(self, media: MediaFile) -> MediaFile:
        self._files[media.id] = media
        self._files.move_to_end(media.id)
        while len(self._files) > self._max_files:
            self._files.popitem(last=False)
        return media

    def create(self, kind: str, mime_type: str, media_id: str, label: Optional[str] = None) -> MediaFile:
        return self.add(MediaFile(media_id, mime_type, placeholder_content(kind, mime_type, media_id, label)))

    def get(self, media_id: str) -> Optional[MediaFile]:
        return self._files.get(media_id)

    def __contains__(self, media_id: object) -> bool:
        return media_id in self._files

    def __len__(self) -> int:
        return len(self._files)

    def clear(self) -> None:
        self._files.clear()
