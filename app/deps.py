"""Typed dependency aliases, so a route's signature says what it uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.backend import Backend
from app.state import ServiceState


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.docqa
    return state


def get_backend(request: Request) -> Backend:
    return get_state(request).require_backend()


StateDep = Annotated[ServiceState, Depends(get_state)]
BackendDep = Annotated[Backend, Depends(get_backend)]
