"""The shell every page shares: the head (charset, viewport, no referrer, the common
CSS, the page's own CSS) and the navigation between the pages.

A page is an HTML fragment file (web/static/<page>/body.html) with its own markup only;
`render` wraps it. The navigation shows the campaigns page to everyone: the page itself
says who may use it (a 403 from its API), as the desk does for labels.
"""
import html
from functools import lru_cache
from pathlib import Path
from typing import Sequence, Tuple

# (key, title, path relative to the desk's root URL /webhooks/desk/)
PAGES: Tuple[Tuple[str, str, str], ...] = (("desk", "Agent desk", ""), ("campaigns", "Campaigns", "campaigns/"))


def nav(active: str, root: str) -> str:
    """Links to every page; `root` is the relative way from the page to the desk's root."""
    items = "".join(
        f'<a href="{html.escape(root + path)}" data-testid="nav-{key}"'
        + (' aria-current="page" class="active"' if key == active else "") + f">{html.escape(title)}</a>"
        for key, title, path in PAGES
    )
    return f'<nav class="site-nav" aria-label="Pages"><span class="brand">Shop</span>{items}</nav>'


@lru_cache(maxsize=16)
def _read(path: str, stamp: float) -> str:
    return Path(path).read_text(encoding="utf-8")


def render(body_file: Path, title: str, active: str, root: str, css: Sequence[str] = (), js: Sequence[str] = ()) -> str:
    """The whole page: the shared head and navigation around the page's fragment, the
    shared CSS and DOM helper (web/static/common/) before the page's own.
    `css`/`js` are URLs relative to the page (its `static/...`)."""
    body = _read(str(body_file), body_file.stat().st_mtime)
    links = "".join(f'<link rel="stylesheet" href="{html.escape(href)}">' for href in ("static/common.css", *css))
    scripts = "".join(f'<script src="{html.escape(src)}"></script>' for src in ("static/dom.js", *js))
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"{links}\n</head>\n<body data-page=\"{html.escape(active)}\">\n{nav(active, root)}\n{body}\n{scripts}\n</body>\n</html>\n"
    )
