"""Both backends implement the whole TraceStore protocol, with the protocol's parameters."""

from __future__ import annotations

import inspect

import pytest

from sightline.store import DuckDBStore
from sightline.store._clickhouse import ClickHouseStore
from sightline.store.base import TraceStore

_METHODS = sorted(
    n
    for cls in TraceStore.__mro__
    if cls.__module__.startswith("sightline.")
    for n, v in vars(cls).items()
    if not n.startswith("_") and (callable(v) or isinstance(v, property))
)


@pytest.mark.parametrize("backend", [DuckDBStore, ClickHouseStore], ids=["duckdb", "clickhouse"])
def test_every_protocol_method_is_implemented_with_its_parameters(backend: type) -> None:
    missing = [n for n in _METHODS if not hasattr(backend, n)]
    assert not missing, missing
    for name in _METHODS:
        proto = inspect.getattr_static(TraceStore, name)
        impl = inspect.getattr_static(backend, name)
        if isinstance(proto, property) or not callable(proto):
            continue
        want = list(inspect.signature(proto).parameters)
        got = list(inspect.signature(impl).parameters)
        assert got == want, (name, got, want)


def test_the_protocol_has_methods() -> None:
    assert len(_METHODS) > 80
