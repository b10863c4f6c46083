from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from _helpers import Server, free_port, start_server

# Nothing may fetch model weights or data at run time: any attempt through the Hugging Face hub
# fails instead of downloading.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's SIGHTLINE_*/OTEL_* settings."""
    for k in list(os.environ):
        if k.startswith(("SIGHTLINE_", "OTEL_")):
            monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a test module (tests use distinct trace ids)."""
    srv = start_server(tmp_path_factory.mktemp("srv"), grpc_port=free_port())
    yield srv
    srv.stop()
