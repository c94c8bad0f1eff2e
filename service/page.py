"""``GET /``: the demo page (``service/static/``: plain HTML, CSS and JavaScript, no build step, no CDN).

The page sends an image to ``POST /pose``, a video to ``POST /pose/video`` (reading the NDJSON as it streams) or the
webcam's frames to the ``/pose/stream`` WebSocket, and draws the skeletons over the picture. Mounted only when
``page_enabled`` (``POSE_PAGE_ENABLED=false`` turns it off: ``/`` and ``/static`` are then 404).
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()


#: The page's base URL element, as written in ``index.html``; :func:`page` puts the ``root_path`` in it.
BASE_TAG = '<base href="/">'


@router.get("/", include_in_schema=False)
async def page(request: Request) -> HTMLResponse:
    """The demo page, its ``<base href>`` set to the app's ``root_path`` (a proxy's prefix, ``POSE_ROOT_PATH``) so
    that its relative URLs (``static/app.js``, ``v1/pose``, the WebSocket) reach this app behind the proxy."""
    root = request.scope.get("root_path", "").rstrip("/")
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    text = text.replace(BASE_TAG, f'<base href="{html.escape(root, quote=True)}/">', 1)
    return HTMLResponse(text, headers={"Cache-Control": "no-cache"})


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
