"""The Coordinator: claims of commit ranges with leases, and named leader leases.

Several processes (or threads) share work through it:

- **Evaluation claims.** Committed spans are numbered by commit (``spans.ingest_seq``). For each
  evaluator set (a name, the runner's ``cursor_name``) the coordinator keeps a *frontier*: every
  commit up to it has been handed out. A worker claims the next range ``(lo, hi]`` by moving the
  frontier from ``lo`` to ``hi`` (compare-and-set: two workers that read the same frontier get
  one claim between them). A claim carries a lease; the worker renews it between batches and
  completes (deletes) it when the range is scored. A claim whose lease ran out (its worker
  died or stalled) is taken over by the next worker that asks, with a new token, so the old
  worker's renewals fail from then on.
- **Leader leases.** One name, one owner at a time, until its lease expires (the monitor, so
  alerts are sent once).

Two backends implement it: the trace store (DuckDB: a transaction per call) and Redis (``SET NX
PX`` and Lua scripts: the cluster's, as ClickHouse has no compare-and-set).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from typing import Protocol, runtime_checkable

__all__ = ["Claim", "ClaimsState", "Coordinator", "new_owner_id"]


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """A range of commits ``(lo, hi]`` of evaluator set ``name``, leased to ``owner``."""

    name: str
    lo: int
    hi: int
    owner: str
    token: str
    """Changes at each take-over: a renewal or completion with an old token fails."""
    expires_at: float
    """Unix seconds (the backend's clock) when the lease runs out."""
    attempts: int = 1
    """1 for a fresh claim; each take-over adds one."""
    claimed_at: float = 0.0
    """Unix seconds (the backend's clock) of the first claim: no score of the range is older
    (bounds the duplicate check of ``append_scores_once``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimsState:
    """The frontier of an evaluator set (None before its first claim) and its open claims."""

    frontier: int | None
    claims: tuple[Claim, ...]

    def done_upto(self, default: int = 0) -> int:
        """The last commit such that it and every earlier one is scored (claims closed)."""
        f = self.frontier if self.frontier is not None else default
        return min([f, *(c.lo for c in self.claims)])


@runtime_checkable
class Coordinator(Protocol):
    """Claims with leases, and leader leases; see the module docstring."""

    def claims_state(self, name: str) -> ClaimsState:
        """The frontier and open claims of evaluator set ``name``."""
        ...

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        """Claim ``(lo, hi]`` if the frontier is still ``lo`` (``start_seq`` when unset).

        Returns None when another worker moved the frontier first.
        """
        ...

    def take_over(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        """Take the oldest claim whose lease has run out (None when there is none)."""
        ...

    def renew(self, claim: Claim, *, lease_s: float) -> Claim | None:
        """Extend the lease by ``lease_s`` from now (0 releases it at once).

        Returns None when the claim is no longer this holder's (taken over or completed).
        """
        ...

    def complete(self, claim: Claim) -> bool:
        """Close the claim (its range is scored); False if it was no longer the holder's."""
        ...

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        """Take or renew the leader lease ``name``; True if ``owner`` holds it now."""
        ...

    def release_leader(self, name: str, *, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (another can take it at once)."""
        ...

    def close(self) -> None:
        """Release connections (not leases: a dead process would not either)."""
        ...


def new_owner_id(role: str = "worker") -> str:
    """A unique holder name that says where it runs: ``role@host:pid:random``."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
