"""Coordination in the DuckDB store: evaluation claims, leader leases (migration 12).

Each call is one transaction under the store's admin lock, so a compare-and-set is exact. DuckDB
allows one writer process, so these serve the threads of one process (``--eval-workers N``);
processes on several machines coordinate through Redis instead.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from sightline.coordination._base import Claim, ClaimsState
from sightline.errors import StoreError
from sightline.model import Score

if TYPE_CHECKING:
    from sightline.store._duckdb import DuckDBStore

_T = TypeVar("_T")

_CLAIM_COLS = "name, lo, hi, owner, token, expires_at, attempts, claimed_at"


def _claim(r: Sequence[Any]) -> Claim:
    return Claim(
        str(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), float(r[5]), int(r[6]), float(r[7])
    )


def _tx(store: DuckDBStore, fn: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
    with store._admin_lock, store._cursor() as cur:
        cur.execute("BEGIN")
        try:
            out = fn(cur)
            cur.execute("COMMIT")
        except duckdb.Error as e:
            cur.execute("ROLLBACK")
            raise StoreError(f"coordination failed: {e}") from e
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        return out


def claims_state(store: DuckDBStore, name: str) -> ClaimsState:
    with store._cursor() as cur:
        f = cur.execute("SELECT seq FROM eval_frontiers WHERE name = ?", [name]).fetchall()
        rows = cur.execute(
            f"SELECT {_CLAIM_COLS} FROM eval_claims WHERE name = ? ORDER BY lo",  # noqa: S608
            [name],
        ).fetchall()
    return ClaimsState(int(f[0][0]) if f else None, tuple(_claim(r) for r in rows))


def claim_range(
    store: DuckDBStore, name: str, *, lo: int, hi: int, owner: str, lease_s: float, start_seq: int
) -> Claim | None:
    if hi <= lo:
        return None

    def fn(cur: duckdb.DuckDBPyConnection) -> Claim | None:
        f = cur.execute("SELECT seq FROM eval_frontiers WHERE name = ?", [name]).fetchall()
        frontier = int(f[0][0]) if f else start_seq
        if frontier != lo:
            return None
        if f:
            cur.execute("UPDATE eval_frontiers SET seq = ? WHERE name = ?", [hi, name])
        else:
            cur.execute("INSERT INTO eval_frontiers (name, seq) VALUES (?, ?)", [name, hi])
        now = time.time()
        c = Claim(name, lo, hi, owner, secrets.token_hex(8), now + lease_s, 1, now)
        cur.execute(
            f"INSERT INTO eval_claims ({_CLAIM_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            [c.name, c.lo, c.hi, c.owner, c.token, c.expires_at, c.attempts, c.claimed_at],
        )
        return c

    return _tx(store, fn)


def take_over_claim(store: DuckDBStore, name: str, *, owner: str, lease_s: float) -> Claim | None:
    def fn(cur: duckdb.DuckDBPyConnection) -> Claim | None:
        now = time.time()
        rows = cur.execute(
            f"SELECT {_CLAIM_COLS} FROM eval_claims WHERE name = ? AND expires_at <= ?"  # noqa: S608
            " ORDER BY lo LIMIT 1",
            [name, now],
        ).fetchall()
        if not rows:
            return None
        old = _claim(rows[0])
        c = Claim(
            name,
            old.lo,
            old.hi,
            owner,
            secrets.token_hex(8),
            now + lease_s,
            old.attempts + 1,
            old.claimed_at,
        )
        cur.execute(
            "UPDATE eval_claims SET owner = ?, token = ?, expires_at = ?, attempts = ?"
            " WHERE name = ? AND lo = ? AND token = ?",
            [c.owner, c.token, c.expires_at, c.attempts, name, old.lo, old.token],
        )
        return c

    return _tx(store, fn)


def renew_claim(store: DuckDBStore, claim: Claim, *, lease_s: float) -> Claim | None:
    def fn(cur: duckdb.DuckDBPyConnection) -> Claim | None:
        expires = time.time() + lease_s
        rows = cur.execute(
            "UPDATE eval_claims SET expires_at = ? WHERE name = ? AND lo = ? AND token = ?"
            " RETURNING lo",
            [expires, claim.name, claim.lo, claim.token],
        ).fetchall()
        if not rows:
            return None
        return dataclasses.replace(claim, expires_at=expires)

    return _tx(store, fn)


def complete_claim(store: DuckDBStore, claim: Claim) -> bool:
    def fn(cur: duckdb.DuckDBPyConnection) -> bool:
        rows = cur.execute(
            "DELETE FROM eval_claims WHERE name = ? AND lo = ? AND token = ? RETURNING lo",
            [claim.name, claim.lo, claim.token],
        ).fetchall()
        return bool(rows)

    return _tx(store, fn)


def acquire_leader(store: DuckDBStore, name: str, *, owner: str, lease_s: float) -> bool:
    def fn(cur: duckdb.DuckDBPyConnection) -> bool:
        now = time.time()
        rows = cur.execute(
            "SELECT owner, expires_at FROM leader_leases WHERE name = ?", [name]
        ).fetchall()
        if not rows:
            cur.execute(
                "INSERT INTO leader_leases (name, owner, expires_at) VALUES (?, ?, ?)",
                [name, owner, now + lease_s],
            )
            return True
        holder, expires = str(rows[0][0]), float(rows[0][1])
        if holder != owner and expires > now:
            return False
        cur.execute(
            "UPDATE leader_leases SET owner = ?, expires_at = ? WHERE name = ?",
            [owner, now + lease_s, name],
        )
        return True

    return _tx(store, fn)


def release_leader(store: DuckDBStore, name: str, *, owner: str) -> None:
    def fn(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(
            "UPDATE leader_leases SET expires_at = 0 WHERE name = ? AND owner = ?", [name, owner]
        )

    _tx(store, fn)


def append_scores_once(
    store: DuckDBStore, scores: Sequence[Score], *, since: datetime | None = None
) -> int:
    """Insert the scores whose ``score_id`` is not stored yet; return how many were new.

    ``since`` bounds the check to scores created from then on: DuckDB then reads only the
    recent row groups of ``scores`` (zone maps on ``created_at``), not the whole table.
    """
    from sightline.store._duckdb_evals import _scores_table

    if not scores:
        return 0
    unique = list({s.score_id: s for s in scores}.values())
    with store._admin_lock, store._cursor() as cur:
        cur.register("_scores_once", _scores_table(unique))
        try:
            cur.execute("BEGIN")
            bound = since.astimezone(UTC).replace(tzinfo=None) if since else datetime(1970, 1, 1)
            rows = cur.execute(
                "SELECT i.score_id FROM _scores_once i WHERE NOT EXISTS"
                " (SELECT 1 FROM scores s WHERE s.score_id = i.score_id AND s.created_at >= ?)",
                [bound],
            ).fetchall()
            new = {str(r[0]) for r in rows}
            if new:
                from sightline.store._duckdb_evals import insert_scores

                insert_scores(cur, [s for s in unique if s.score_id in new])
            cur.execute("COMMIT")
        except duckdb.Error as e:
            cur.execute("ROLLBACK")
            raise StoreError(f"score insert failed: {e}") from e
        finally:
            cur.unregister("_scores_once")
    return len(new)
