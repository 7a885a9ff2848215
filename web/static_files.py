"""The pages' own files (web/static/...), served by name from a few folders.

A request names a file relative to the page's `static/` URL; it is looked up in each
folder in turn (the page's own first, then the common one), and only a regular file
inside one of them is served: `..`, absolute paths and symlinks out are 404.
"""
import mimetypes
from pathlib import Path
from typing import Optional, Sequence

from sanic import response
from sanic.response import HTTPResponse

from web.http import error

ROOT = Path(__file__).resolve().parent / "static"
COMMON = ROOT / "common"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
         ".svg": "image/svg+xml"}


def find(folders: Sequence[Path], name: str) -> Optional[Path]:
    """The file `name` in the first folder that has it, never outside them."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    for folder in folders:
        base = folder.resolve()
        candidate = (base / name).resolve()
        if candidate.is_file() and base in candidate.parents:
            return candidate
    return None


async def serve(folders: Sequence[Path], name: str) -> HTTPResponse:
    path = find(folders, name)
    if path is None:
        return error(404, f"no file {name!r}")
    kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # The pages change with the code: the browser asks again (and gets a 200 or a 304 cheaply).
    return await response.file(str(path), mime_type=kind, headers={"Cache-Control": "no-cache"})
