"""What routes need, gathered once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from sightline.config import Settings
from sightline.evals import EvalRunner
from sightline.ingest import GroupCommitWriter, IngestService
from sightline.server._auth import KeyRing, key_from_headers
from sightline.server._prom import Metrics
from sightline.store.base import TraceStore

if TYPE_CHECKING:
    from sightline.alerts import Dispatcher, Monitor
    from sightline.drift import DriftMonitor

__all__ = ["AppState", "project_of", "state_of"]


@dataclass
class AppState:
    """The server's live parts."""

    settings: Settings
    store: TraceStore
    writer: GroupCommitWriter
    ingest: IngestService
    keys: KeyRing
    metrics: Metrics
    evals: EvalRunner | None = None
    """The online evaluation runner (None when evaluation is off)."""
    monitor: Monitor | None = None
    dispatcher: Dispatcher | None = None
    drift: DriftMonitor | None = None


def state_of(request: Request) -> AppState:
    """The AppState of the app serving ``request``."""
    st: AppState = request.app.state.sightline
    return st


def project_of(request: Request) -> str:
    """FastAPI dependency: the project of the request's API key (401 otherwise)."""
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))
    return state_of(request).keys.project_for(key)
