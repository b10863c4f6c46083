"""The loop that records automatic release markers (new service.version, model, prompt version)."""

from __future__ import annotations

import structlog

from sightline._clock import Clock
from sightline._daemon import DaemonTask
from sightline.store.base import TraceStore

__all__ = ["ReleaseDetector"]

log = structlog.get_logger("sightline.releases")


class ReleaseDetector(DaemonTask):
    """Every ``interval_s``, records a marker for each version first seen in new spans.

    Only spans committed since the previous run are read (by ingest sequence), so a run costs
    the new spans, not the table.
    """

    name = "releases"

    def __init__(self, store: TraceStore, *, clock: Clock, interval_s: float) -> None:
        super().__init__(interval_s=interval_s)
        self._store = store
        self._clock = clock
        self._seen_seq = 0

    def run_once(self) -> None:
        """Detect in every project."""
        upto = self._store.last_ingest_seq()
        if upto <= self._seen_seq:
            return
        now = self._clock()
        for p in self._store.list_projects():
            for r in self._store.detect_releases(p.id, now, after_seq=self._seen_seq):
                log.info(
                    "release_detected",
                    project=p.id,
                    kind=r.kind,
                    service=r.service,
                    version=r.version,
                )
        self._seen_seq = upto
