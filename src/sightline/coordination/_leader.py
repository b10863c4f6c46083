"""Leadership: hold a leader lease, and run something only while holding it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from sightline._daemon import DaemonTask
from sightline.coordination._base import Coordinator

__all__ = ["Leadership"]

log = structlog.get_logger("sightline.coordination")


class Leadership(DaemonTask):
    """Takes or renews the lease ``lease_name`` every ``lease_s / 3`` seconds.

    When it becomes the leader it calls ``on_elected`` (start the monitor loops); when a renewal
    fails, or the coordinator cannot be reached for so long that the lease may have run out, it
    calls ``on_deposed`` (stop them) first thing. :attr:`is_leader` is also False past the
    lease's deadline as measured here, so a loop that checks it before each tick never acts on a
    lease another process may hold. ``stop`` releases the lease, so a clean shutdown hands over
    at once; a killed process's lease runs out after ``lease_s``.
    """

    name = "leader"

    def __init__(
        self,
        coordinator: Coordinator,
        lease_name: str,
        *,
        owner: str,
        lease_s: float = 15.0,
        on_elected: Callable[[], None] | None = None,
        on_deposed: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(interval_s=lease_s / 3)
        self.coordinator = coordinator
        self.lease_name = lease_name
        self.owner = owner
        self.lease_s = lease_s
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._monotonic = monotonic
        self._held = False
        self._valid_until = 0.0
        self._lock = threading.Lock()
        self.num_elected = 0
        """Times this holder became the leader."""

    @property
    def is_leader(self) -> bool:
        """True while this holder's lease is held and, by its own clock, not yet run out."""
        return self._held and self._monotonic() < self._valid_until

    def run_once(self) -> None:
        """Take or renew the lease; start or stop the leader's work on a change."""
        with self._lock:
            if self.stopping:
                return
            asked = self._monotonic()
            try:
                held = self.coordinator.acquire_leader(
                    self.lease_name, owner=self.owner, lease_s=self.lease_s
                )
            except Exception:  # an unreachable coordinator: keep the lease until it runs out
                log.exception("leader_renew_failed", lease=self.lease_name)
                held = self._held and asked < self._valid_until
            else:
                if held:
                    self._valid_until = asked + self.lease_s
            if held and not self._held:
                self._held = True
                self.num_elected += 1
                log.info("leader_elected", lease=self.lease_name, owner=self.owner)
                if self._on_elected is not None:
                    try:
                        self._on_elected()
                    except Exception:
                        # half started (e.g. the store failed while the monitor reloaded its
                        # alerts): holding the lease would keep every node from running the
                        # leader's work. Stop what started, hand over, try again next time.
                        log.exception("leader_start_failed", lease=self.lease_name)
                        self._resign()
            elif not held and self._held:
                self._held = False
                log.warning("leader_deposed", lease=self.lease_name, owner=self.owner)
                if self._on_deposed is not None:
                    self._on_deposed()

    def on_stop(self) -> None:
        """Stop the leader's work, then hand the lease over."""
        with self._lock:
            if self._held:
                self._resign()

    def _resign(self) -> None:
        """Stop the leader's work and release the lease (holding ``_lock``)."""
        self._held = False
        self._valid_until = 0.0
        try:
            if self._on_deposed is not None:
                self._on_deposed()
        finally:
            try:
                self.coordinator.release_leader(self.lease_name, owner=self.owner)
            except Exception:  # the lease runs out by itself
                log.exception("leader_release_failed", lease=self.lease_name)
