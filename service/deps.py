"""Typed FastAPI dependencies (``Annotated``): the service state, its settings, the ready pipeline and the
API-key check (declared with FastAPI's security classes, so the OpenAPI schema lists the schemes and Swagger UI's
"Authorize" sends them). All ``async``: FastAPI would run plain functions in the thread pool, where a refusal could
wait behind inference."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from core.errors import NotReadyError, UnauthorizedError
from core.settings import Settings
from inference.pipeline import PosePipeline
from service.state import ServiceState


async def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    """The settings the app was built with."""
    return state.settings


async def get_pipeline(state: StateDep) -> PosePipeline:
    """The loaded pipeline.

    Raises:
        NotReadyError: models are still loading, or failed to load (the message says which; ``Retry-After``).
    """
    if state.error is not None:
        raise NotReadyError(f"models failed to load: {state.error}", retry_after_s=30)
    if not state.ready or state.pipeline is None:
        raise NotReadyError("models are loading; retry when GET /readyz answers 200")
    return state.pipeline


#: The two ways to send a key, as OpenAPI security schemes (``auto_error=False``: :func:`verify_api_key` answers).
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", scheme_name="APIKeyHeader", auto_error=False, description="one of the keys in `api_keys`"
)
BEARER = HTTPBearer(scheme_name="Bearer", auto_error=False, description="`Authorization: Bearer <key>`")


def verify_api_key(state: ServiceState, given: str) -> None:
    """With API keys configured, ``given`` must be one of them (empty: none was sent).

    Every configured key is compared in constant time (``hmac.compare_digest``), all of them, so the time taken
    does not tell which key came closest.

    Raises:
        UnauthorizedError: no key, or a wrong one (401 with ``WWW-Authenticate: Bearer``).
    """
    if not state.api_keys:
        return
    if not given:
        raise UnauthorizedError("an API key is required: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
    matched = False
    for key in state.api_keys:
        matched |= hmac.compare_digest(given.encode(), key.encode())
    if not matched:
        raise UnauthorizedError("the API key is not valid")


def check_api_key(state: ServiceState, headers, query_key: str | None = None) -> None:
    """:func:`verify_api_key` on ``Authorization: Bearer <key>``, else ``X-API-Key``, else (for a WebSocket from a
    browser, which cannot set headers) ``query_key``: the ``api_key`` query parameter.

    Raises:
        UnauthorizedError: no key, or a wrong one (401 with ``WWW-Authenticate: Bearer``).
    """
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth[:7].lower() == "bearer " else headers.get("x-api-key", "") or (query_key or "")
    verify_api_key(state, given)


async def require_api_key(
    state: StateDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> None:
    """:func:`verify_api_key` on an HTTP request's key: the bearer token, else ``X-API-Key``.

    Raises:
        UnauthorizedError: no key, or a wrong one (401 with ``WWW-Authenticate: Bearer``).
    """
    verify_api_key(state, bearer.credentials if bearer is not None else (x_api_key or ""))


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[PosePipeline, Depends(get_pipeline)]
APIKeyDep = Depends(require_api_key)
