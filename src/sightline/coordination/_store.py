"""The Coordinator backed by the trace store (transactional: DuckDB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sightline.coordination._base import Claim, ClaimsState

if TYPE_CHECKING:
    from sightline.store.base import TraceStore

__all__ = ["StoreCoordinator"]


class StoreCoordinator:
    """Claims and leader leases in the store's tables (each call one transaction).

    With DuckDB this coordinates the threads of one process: ``--eval-workers N`` and the
    monitor of a single node. Processes on several machines use :class:`RedisCoordinator`.
    """

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def claims_state(self, name: str) -> ClaimsState:
        """See :class:`Coordinator`."""
        return self.store.claims_state(name)

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        """See :class:`Coordinator`."""
        return self.store.claim_range(
            name, lo=lo, hi=hi, owner=owner, lease_s=lease_s, start_seq=start_seq
        )

    def take_over(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        """See :class:`Coordinator`."""
        return self.store.take_over_claim(name, owner=owner, lease_s=lease_s)

    def renew(self, claim: Claim, *, lease_s: float) -> Claim | None:
        """See :class:`Coordinator`."""
        return self.store.renew_claim(claim, lease_s=lease_s)

    def complete(self, claim: Claim) -> bool:
        """See :class:`Coordinator`."""
        return self.store.complete_claim(claim)

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        """See :class:`Coordinator`."""
        return self.store.acquire_leader(name, owner=owner, lease_s=lease_s)

    def release_leader(self, name: str, *, owner: str) -> None:
        """See :class:`Coordinator`."""
        self.store.release_leader(name, owner=owner)

    def close(self) -> None:
        """Nothing to release: the store belongs to the server."""
