"""The web console: a static page (``console/``, no build step) served at ``/console/``.

The page talks only to the HTTP API under ``/api/v1`` (see docs/console.md); this router just hands
out its files. They are package data, so the console works from a wheel as from a checkout.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response

ASSETS: Final = "console"
MEDIA_TYPES: Final = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                      ".css": "text/css; charset=utf-8"}
NO_CACHE: Final = {"Cache-Control": "no-cache"}
"""The browser revalidates each file (they are small; a new version is picked up at once)."""

router = APIRouter(include_in_schema=False)


def asset_names() -> list[str]:
    """The console's files (``index.html``, the JavaScript modules, the stylesheet)."""
    folder = resources.files(__package__).joinpath(ASSETS)
    return sorted(p.name for p in folder.iterdir() if p.is_file() and "." + p.name.rsplit(".", 1)[-1] in MEDIA_TYPES)


def read_asset(name: str) -> tuple[bytes, str]:
    """A console file's bytes and media type; KeyError for anything that is not one of its files."""
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in MEDIA_TYPES:
        raise KeyError(name)
    path = resources.files(__package__).joinpath(ASSETS, name)
    if not path.is_file():
        raise KeyError(name)
    return path.read_bytes(), MEDIA_TYPES[suffix]


@router.get("/console")
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def console_index() -> Response:
    body, media = read_asset("index.html")
    return Response(body, media_type=media, headers=NO_CACHE)


@router.get("/console/{name}")
async def console_asset(name: str) -> Response:
    try:
        body, media = read_asset(name)
    except KeyError:
        raise HTTPException(404, f"no console file {name!r}") from None
    return Response(body, media_type=media, headers=NO_CACHE)


__all__ = ["asset_names", "read_asset", "router"]
