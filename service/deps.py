"""Typed FastAPI dependencies (``Annotated``): the service state, its settings and the ready pipeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import NotReadyError
from service.pipeline import PosePipeline
from service.settings import Settings
from service.state import ServiceState


def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    return request.app.state.service


StateDep = Annotated[ServiceState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    """The settings the app was built with."""
    return state.settings


def get_pipeline(state: StateDep) -> PosePipeline:
    """The loaded pipeline.

    Raises:
        NotReadyError: models are still loading, or failed to load (the message says which).
    """
    if state.error is not None:
        raise NotReadyError(f"models failed to load: {state.error}")
    if not state.ready or state.pipeline is None:
        raise NotReadyError("models are loading; retry when GET /readyz answers 200")
    return state.pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[PosePipeline, Depends(get_pipeline)]
