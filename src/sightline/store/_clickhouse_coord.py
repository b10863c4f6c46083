"""Scale-out on the ClickHouse store: idempotent score appends; claims and leases go to Redis.

Claims and leader leases need compare-and-set, which ClickHouse does not have: over ClickHouse,
several workers or split roles coordinate through Redis (``--redis-url``), and the server
refuses to start them without it. The claim methods exist so the store keeps the protocol, and
say so if called.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sightline.coordination._base import Claim, ClaimsState
from sightline.errors import StoreError
from sightline.model import Score
from sightline.store._clickhouse_base import ch_ts
from sightline.store._clickhouse_evals import EvalsMixin

__all__ = ["CoordMixin"]

_NO_CAS = (
    "the ClickHouse store cannot hold evaluation claims or leader leases (no compare-and-set):"
    " coordinate through Redis with --redis-url"
)


class CoordMixin(EvalsMixin):
    def append_scores_once(self, scores: Sequence[Score], *, since: datetime | None = None) -> int:
        if not scores:
            return 0
        where = (
            "project_id IN {p:Array(String)} AND trace_id IN {t:Array(String)}"
            " AND score_id IN {s:Array(String)}"
        )
        params: dict[str, object] = {
            "p": sorted({s.project_id for s in scores}),
            "t": sorted({s.trace_id for s in scores}),
            "s": sorted({s.score_id for s in scores}),
        }
        if since is not None:
            where += " AND created_at >= {since:DateTime64(6, 'UTC')}"
            params["since"] = ch_ts(since)
        stored = {r[0] for r in self._q(f"SELECT score_id FROM scores WHERE {where}", params)}  # noqa: S608
        new: list[Score] = []
        for s in scores:
            if s.score_id not in stored:
                stored.add(s.score_id)
                new.append(s)
        self._write_scores(new, [s.score_id for s in new])
        return len(new)

    def claims_state(self, name: str) -> ClaimsState:
        raise StoreError(_NO_CAS)

    def claim_range(
        self, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int = 0
    ) -> Claim | None:
        raise StoreError(_NO_CAS)

    def take_over_claim(self, name: str, *, owner: str, lease_s: float) -> Claim | None:
        raise StoreError(_NO_CAS)

    def renew_claim(self, claim: Claim, *, lease_s: float) -> Claim | None:
        raise StoreError(_NO_CAS)

    def complete_claim(self, claim: Claim) -> bool:
        raise StoreError(_NO_CAS)

    def acquire_leader(self, name: str, *, owner: str, lease_s: float) -> bool:
        raise StoreError(_NO_CAS)

    def release_leader(self, name: str, *, owner: str) -> None:
        raise StoreError(_NO_CAS)
