"""``GET /docs`` (Swagger UI) and ``GET /redoc`` (ReDoc) from local files: no CDN, so the pages work where the
service cannot reach the internet (and the browser need not either).

The JavaScript and CSS are the ``fastapi-offline`` package's static files (Swagger UI 5's ``swagger-ui-bundle.js`` and
``swagger-ui.css``, ReDoc 2's ``redoc.standalone.js``, a favicon; the serve extras install it), served at
``/docs/static``; only its files are used, not its app class. The pages are FastAPI's own
(``fastapi.openapi.docs``, "Self-hosting JavaScript and CSS for docs"), pointed at those files and at
``/openapi.json``, all under the request's ``root_path`` (a proxy's prefix, setting ``root_path``). Without the
package the pages are left out (a warning says so); ``/openapi.json`` is still served. ``docs_enabled=false``
turns all of it off (``service/app.py``).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger("service")

#: Where the pages' files are served.
STATIC_URL = "/docs/static"
#: The files the pages load (all in the package's ``static`` folder).
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")


def assets_dir() -> Path | None:
    """The folder of ``fastapi-offline``'s static files, or None when the package (or a file) is missing. The package
    is located, not imported: nothing of it runs."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if all((folder / name).is_file() for name in ASSETS) else None


def mount_docs(app: FastAPI, openapi_url: str) -> bool:
    """Serve ``/docs``, ``/redoc`` and their files at :data:`STATIC_URL`; False (and a warning) when the files are
    missing."""
    folder = assets_dir()
    if folder is None:
        log.warning("the fastapi-offline package is not installed: /docs and /redoc are off (install the serve extra)")
        return False
    app.mount(STATIC_URL, StaticFiles(directory=folder), name="docs-static")

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    return True
