"""``GET /``: the demo page (``service/static/``: plain HTML, CSS and JavaScript, no build step, no CDN).

The page sends an image to ``POST /pose``, a video to ``POST /pose/video`` (reading the NDJSON as it streams) or the
webcam's frames to the ``/pose/stream`` WebSocket, and draws the skeletons over the picture. Mounted only when
``page_enabled`` (``POSE_PAGE_ENABLED=false`` turns it off: ``/`` and ``/static`` are then 404).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
