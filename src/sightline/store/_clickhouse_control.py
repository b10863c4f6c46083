"""The ClickHouse store's control plane: projects, keys, users, privacy, budgets, prompts.

Audit, retention and erasure live here too.

The DuckDB store keeps these in tables with primary keys and updates them in transactions.
ClickHouse has neither, so here:

- Rows that change are ``ReplacingMergeTree(_version[, _deleted])`` tables read with ``FINAL``:
  an update inserts the whole row again with a larger ``_version``, a deletion a row with
  ``_deleted = 1``.
- What DuckDB refuses with a constraint (a second project of one id, a second user of one
  email, a prompt version number taken twice, a budget threshold alerted twice) goes through
  ``CHBase._create_unique``: a claim row, a read of the other claims, a check, the insert.
  Of two servers racing on the same key one creates it; the other gets the error a second
  create gets (a prompt version takes the next number). See docs/clickhouse.md.
- ``touch_api_keys`` writes to its own table (``api_key_usage``) instead of rewriting the key:
  a read-modify-write of the key racing a revocation could otherwise bring a revoked key back.
- Retention purges and erasure really delete rows (lightweight ``DELETE`` for purges, an
  ``ALTER TABLE ... DELETE`` mutation that rewrites the parts for erasure, so the erased values
  leave the files too).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from sightline.errors import ConfigError, Conflict, NotFound, StoreError
from sightline.model import Delivery, PromptVersion
from sightline.semconv import USER_ID_ATTRIBUTES
from sightline.store._analysis_records import PromptSummary
from sightline.store._clickhouse_base import CH_DT as _TS
from sightline.store._clickhouse_base import CH_NDT as _NTS
from sightline.store._clickhouse_base import CH_NSTR as _S
from sightline.store._clickhouse_base import CHBase, KeyTaken, ch_ts, ch_us
from sightline.store._clickhouse_base import ch_aware as _utc
from sightline.store._scrub import example_texts, scrub_examples
from sightline.store._users import Membership, User, UserSession
from sightline.store.base import (
    ApiKey,
    AuditEntry,
    BudgetRow,
    BudgetSpend,
    Deleted,
    PrivacySettings,
    Project,
)

__all__ = ["ControlMixin"]

_KEY_COLUMNS = "key_hash, prefix, project_id, role, created_at, name, revoked_at"
_USER_COLUMNS = "user_id, email, password_hash, is_admin, created_at"
_PROMPT_COLS = (
    "project_id, name, version, kind, type, template, model, parameters, author, message,"
    " created_at"
)
_BUDGET_COLUMNS = {
    "user_id": "`user_id`",
    "tenant_id": "`tenant_id`",
    "feature": "`feature`",
    "model": "coalesce(`request_model`, `model`)",
}
"""The span columns a budget can be scoped by, as SQL (never interpolated from user input
otherwise). A model budget counts a call by the model it asked for, the name the SDK and the
gateway check with: ``model`` is the answer's (``gpt-4o-mini-2024-07-18`` for ``gpt-4o-mini``)."""
_MEMBER = "user_id = {u:String} AND project_id = {p:String}"
_BUDGET = "project_id = {p:String} AND name = {n:String}"
_LABEL = "project_id = {p:String} AND name = {n:String} AND label = {l:String}"
_ERASE_SYNC = " SETTINGS mutations_sync = 2"
"""Wait for an erasure's mutation on every replica before returning."""
_PROMPT_ATTEMPTS = 8
"""Version numbers tried by one add_prompt_version while others take them."""


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ControlMixin(CHBase):
    """Control-plane records: projects, keys, users, privacy, budgets, prompts."""

    if TYPE_CHECKING:  # MonitorMixin's, in the store that combines them

        def save_delivery(self, delivery: Delivery) -> None: ...

    DDL: ClassVar[list[str]] = [
        f"""CREATE TABLE IF NOT EXISTS projects (
            id String, created_at {_TS}, _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
        f"""CREATE TABLE IF NOT EXISTS api_keys (
            key_hash String, prefix String, project_id String, role LowCardinality(String),
            created_at {_TS}, revoked_at {_NTS}, name {_S}, _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY key_hash""",
        # last use of a key, written by the auth middleware's periodic flush; apart from
        # api_keys so that it never rewrites (and never un-revokes) a key
        f"""CREATE TABLE IF NOT EXISTS api_key_usage (
            key_hash String, last_used_at {_TS}
        ) ENGINE = ReplacingMergeTree(last_used_at) ORDER BY key_hash""",
        f"""CREATE TABLE IF NOT EXISTS users (
            user_id String, email String, password_hash String, is_admin Bool,
            created_at {_TS}, _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY user_id""",
        # expired sessions leave by TTL (DuckDB deletes them at the next login); the margin
        # keeps the rows of a clock that runs behind (tests, a skewed node) readable
        f"""CREATE TABLE IF NOT EXISTS user_sessions (
            session_hash String, user_id String, csrf_token String,
            created_at {_TS}, expires_at {_TS}, _version UInt64, _deleted UInt8
        ) ENGINE = ReplacingMergeTree(_version, _deleted) ORDER BY session_hash
        TTL toDateTime(expires_at) + INTERVAL 90 DAY""",
        f"""CREATE TABLE IF NOT EXISTS memberships (
            user_id String, project_id String, role LowCardinality(String),
            created_at {_TS}, _version UInt64, _deleted UInt8
        ) ENGINE = ReplacingMergeTree(_version, _deleted) ORDER BY (user_id, project_id)""",
        f"""CREATE TABLE IF NOT EXISTS project_privacy (
            project_id String, policy {_S}, retention_days Nullable(Int32),
            updated_at {_TS}, _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY project_id""",
        f"""CREATE TABLE IF NOT EXISTS audit_log (
            project_id {_S}, audit_id String, `at` {_TS}, actor String,
            action LowCardinality(String), target {_S}, details String
        ) ENGINE = MergeTree PARTITION BY toYYYYMM(`at`) ORDER BY (project_id, `at`, audit_id)
        SETTINGS allow_nullable_key = 1""",
        f"""CREATE TABLE IF NOT EXISTS budgets (
            project_id String, name String, spec String, source LowCardinality(String),
            created_at {_TS}, updated_at {_TS}, _version UInt64, _deleted UInt8
        ) ENGINE = ReplacingMergeTree(_version, _deleted) ORDER BY (project_id, name)""",
        f"""CREATE TABLE IF NOT EXISTS budget_alerts (
            project_id String, budget String, scope_value String, period_start {_TS},
            threshold Float64, spent_usd Float64, fired_at {_TS}
        ) ENGINE = ReplacingMergeTree(fired_at)
        ORDER BY (project_id, budget, scope_value, period_start, threshold)""",
        f"""CREATE TABLE IF NOT EXISTS prompt_versions (
            project_id String, name String, version Int32, kind LowCardinality(String),
            type LowCardinality(String), template String, model {_S}, parameters String,
            author {_S}, message {_S}, created_at {_TS}, _version UInt64
        ) ENGINE = ReplacingMergeTree(_version) ORDER BY (project_id, name, version)""",
        f"""CREATE TABLE IF NOT EXISTS prompt_labels (
            project_id String, name String, label String, version Int32,
            updated_at {_TS}, updated_by {_S}, _version UInt64, _deleted UInt8
        ) ENGINE = ReplacingMergeTree(_version, _deleted) ORDER BY (project_id, name, label)""",
    ]

    # -- row versions --------------------------------------------------------------------------

    def _next_version(self, table: str, where: str, params: dict[str, Any]) -> int:
        """A version above every stored one of the row (a clock running behind still wins).

        A node whose clock lags the one that wrote the row must still replace it: a
        revocation must never lose to the key it revokes.
        """
        rows = self._q(f"SELECT max(_version) FROM {table} WHERE {where}", params)  # noqa: S608
        return max(self._version(), int(rows[0][0] or 0) + 1)

    # -- projects and keys ---------------------------------------------------------------------

    def create_project(self, project_id: str) -> Project:
        # a uniqueness claim: of two servers racing on one id, one creates it (docs/clickhouse.md)
        try:
            self._create_unique(
                "project",
                project_id,
                exists=lambda: self.get_project(project_id) is not None,
                create=lambda: self._insert_rows(
                    "projects",
                    ["id", "created_at", "_version"],
                    [[project_id, _now(), self._version()]],
                ),
                what=f"project {project_id!r}",
            )
        except KeyTaken:
            raise ConfigError(f"project {project_id!r} already exists") from None
        p = self.get_project(project_id)
        if p is None:
            raise StoreError(f"project {project_id!r} vanished after creation")
        return p

    def get_project(self, project_id: str) -> Project | None:
        rows = self._q(
            "SELECT id, created_at FROM projects FINAL WHERE id = {p:String}", {"p": project_id}
        )
        return Project(rows[0][0], _aware(rows[0][1])) if rows else None

    def list_projects(self) -> list[Project]:
        rows = self._q("SELECT id, created_at FROM projects FINAL ORDER BY id")
        return [Project(r[0], _aware(r[1])) for r in rows]

    def add_api_key(self, key: ApiKey) -> None:
        self._insert_rows(
            "api_keys",
            ["key_hash", "prefix", "project_id", "role", "created_at", "revoked_at", "name",
             "_version"],
            # a new key is live and unused, whatever the record says (as in DuckDB)
            [[key.key_hash, key.prefix, key.project_id, key.role, ch_ts(key.created_at), None,
              key.name, self._version()]],
        )  # fmt: skip

    def _keys(self, where: str, params: dict[str, Any]) -> list[ApiKey]:
        """Keys matching ``where`` (on api_keys), oldest first, with their last use."""
        cols = ", ".join(f"k.{c.strip()}" for c in _KEY_COLUMNS.split(","))
        rows = self._q(
            f"SELECT {cols}, u.last_used_at"  # noqa: S608 - where is a constant of this class
            f" FROM (SELECT * FROM api_keys FINAL WHERE {where}) AS k"
            " LEFT JOIN (SELECT key_hash, max(last_used_at) AS last_used_at FROM api_key_usage"
            " GROUP BY key_hash) AS u ON u.key_hash = k.key_hash"
            " ORDER BY k.created_at, k.key_hash SETTINGS join_use_nulls = 1",
            params,
        )
        # columns: key_hash prefix project_id role created_at name revoked_at last_used_at
        return [
            ApiKey(r[0], r[1], r[2], r[3], _aware(r[4]), r[5], _utc(r[7]), _utc(r[6])) for r in rows
        ]

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        rows = self._q(
            "SELECT key_hash, prefix, project_id, role, created_at FROM api_keys FINAL"
            " WHERE key_hash = {h:String} AND revoked_at IS NULL",
            {"h": key_hash},
        )
        if not rows:
            return None
        r = rows[0]
        return ApiKey(r[0], r[1], r[2], r[3], _aware(r[4]))

    def list_api_keys(self, project_id: str) -> list[ApiKey]:
        return self._keys("project_id = {p:String}", {"p": project_id})

    def revoke_api_key(self, project_id: str, key_id: str) -> ApiKey | None:
        # key ids are 16 hex digits: anything else matches nothing (and no prefix search of "")
        if len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
            return None
        live = [
            k
            for k in self._keys(
                "project_id = {p:String} AND startsWith(key_hash, {k:String})",
                {"p": project_id, "k": key_id},
            )
            if k.revoked_at is None
        ]
        if len(live) != 1:
            return None
        k = live[0]
        self._insert_rows(
            "api_keys",
            ["key_hash", "prefix", "project_id", "role", "created_at", "revoked_at", "name",
             "_version"],
            [[k.key_hash, k.prefix, k.project_id, k.role, ch_ts(k.created_at), _now(), k.name,
              self._next_version("api_keys", "key_hash = {h:String}", {"h": k.key_hash})]],
        )  # fmt: skip
        return k

    def touch_api_keys(self, last_used: dict[str, datetime]) -> None:
        self._insert_rows(
            "api_key_usage",
            ["key_hash", "last_used_at"],
            [[h, ch_ts(t)] for h, t in last_used.items()],
        )

    # -- dashboard users -----------------------------------------------------------------------

    @staticmethod
    def _user(r: tuple[Any, ...] | list[Any]) -> User:
        return User(r[0], r[1], r[2], bool(r[3]), _aware(r[4]))

    def create_user(self, user: User) -> None:
        # a uniqueness claim on the email: of two servers racing, one creates the user
        def taken() -> bool:
            rows = self._q(
                "SELECT count() FROM users FINAL WHERE email = {e:String} OR user_id = {u:String}",
                {"e": user.email, "u": user.user_id},
            )
            return bool(rows[0][0])

        try:
            self._create_unique(
                "user",
                user.email,
                exists=taken,
                create=lambda: self._insert_rows(
                    "users",
                    [*(c.strip() for c in _USER_COLUMNS.split(",")), "_version"],
                    [
                        [
                            user.user_id,
                            user.email,
                            user.password_hash,
                            user.is_admin,
                            ch_ts(user.created_at),
                            self._version(),
                        ]
                    ],
                ),  # fmt: skip
                what=f"user {user.email!r}",
            )
        except KeyTaken:
            raise ConfigError(f"a user with email {user.email!r} exists") from None

    def count_users(self) -> int:
        return int(self._q("SELECT count() FROM users FINAL")[0][0])

    def create_first_user(self, user: User) -> bool:
        # one claim on "the first user" for every process: of several racing, one creates
        try:
            self._create_unique(
                "first-user",
                "",
                exists=lambda: self.count_users() > 0,
                create=lambda: self.create_user(user),
                what="the first user",
            )
        except KeyTaken:
            return False
        return True

    def get_user(self, user_id: str) -> User | None:
        rows = self._q(
            f"SELECT {_USER_COLUMNS} FROM users FINAL WHERE user_id = {{u:String}}",  # noqa: S608
            {"u": user_id},
        )
        return self._user(rows[0]) if rows else None

    def get_user_by_email(self, email: str) -> User | None:
        rows = self._q(
            f"SELECT {_USER_COLUMNS} FROM users FINAL WHERE email = {{e:String}}"  # noqa: S608
            " ORDER BY created_at LIMIT 1",
            {"e": email.strip().lower()},
        )
        return self._user(rows[0]) if rows else None

    def create_session(self, session: UserSession) -> None:
        self._insert_rows(
            "user_sessions",
            ["session_hash", "user_id", "csrf_token", "created_at", "expires_at", "_version",
             "_deleted"],
            [[session.session_hash, session.user_id, session.csrf_token,
              ch_ts(session.created_at), ch_ts(session.expires_at), self._version(), 0]],
        )  # fmt: skip

    def get_session(self, session_hash: str, now: datetime) -> UserSession | None:
        rows = self._q(
            "SELECT session_hash, user_id, csrf_token, created_at, expires_at"
            " FROM user_sessions FINAL"
            " WHERE session_hash = {h:String} AND expires_at > {now:DateTime64(6, 'UTC')}",
            {"h": session_hash, "now": ch_ts(now)},
        )
        if not rows:
            return None
        r = rows[0]
        return UserSession(r[0], r[1], r[2], _aware(r[3]), _aware(r[4]))

    def delete_session(self, session_hash: str) -> None:
        # a tombstone: FINAL drops the session; it expires with the session, so the TTL never
        # removes the tombstone before the row it hides
        rows = self._q(
            "SELECT user_id, created_at, expires_at FROM user_sessions FINAL"
            " WHERE session_hash = {h:String}",
            {"h": session_hash},
        )
        if not rows:
            return
        self._insert_rows(
            "user_sessions",
            ["session_hash", "user_id", "csrf_token", "created_at", "expires_at", "_version",
             "_deleted"],
            [[session_hash, rows[0][0], "", rows[0][1], rows[0][2],
              self._next_version("user_sessions", "session_hash = {h:String}",
                                 {"h": session_hash}), 1]],
        )  # fmt: skip

    def add_membership(self, membership: Membership) -> None:
        m = membership
        self._insert_rows(
            "memberships",
            ["user_id", "project_id", "role", "created_at", "_version", "_deleted"],
            [
                [
                    m.user_id,
                    m.project_id,
                    m.role,
                    ch_ts(m.created_at),
                    self._next_version("memberships", _MEMBER, {"u": m.user_id, "p": m.project_id}),
                    0,
                ]
            ],
        )

    def remove_membership(self, user_id: str, project_id: str) -> bool:
        rows = self._q(
            "SELECT role, created_at FROM memberships FINAL"
            " WHERE user_id = {u:String} AND project_id = {p:String}",
            {"u": user_id, "p": project_id},
        )
        if not rows:
            return False
        self._insert_rows(
            "memberships",
            ["user_id", "project_id", "role", "created_at", "_version", "_deleted"],
            [
                [
                    user_id,
                    project_id,
                    rows[0][0],
                    rows[0][1],
                    self._next_version("memberships", _MEMBER, {"u": user_id, "p": project_id}),
                    1,
                ]
            ],
        )
        return True

    def list_memberships(self, user_id: str) -> list[Membership]:
        rows = self._q(
            "SELECT user_id, project_id, role, created_at FROM memberships FINAL"
            " WHERE user_id = {u:String} ORDER BY project_id",
            {"u": user_id},
        )
        return [Membership(r[0], r[1], r[2], _aware(r[3])) for r in rows]

    def list_members(self, project_id: str) -> list[tuple[User, Membership]]:
        rows = self._q(
            "SELECT u.user_id, u.email, u.password_hash, u.is_admin, u.created_at,"  # noqa: S608
            " m.role, m.created_at"
            " FROM (SELECT user_id, role, created_at FROM memberships FINAL"
            " WHERE project_id = {p:String}) AS m"
            f" INNER JOIN (SELECT {_USER_COLUMNS} FROM users FINAL) AS u"
            " ON u.user_id = m.user_id ORDER BY u.email",
            {"p": project_id},
        )
        return [(self._user(r[:5]), Membership(r[0], project_id, r[5], _aware(r[6]))) for r in rows]

    # -- privacy and audit ---------------------------------------------------------------------

    def get_privacy(self, project_id: str) -> PrivacySettings | None:
        rows = self._q(
            "SELECT project_id, policy, retention_days, updated_at FROM project_privacy FINAL"
            " WHERE project_id = {p:String}",
            {"p": project_id},
        )
        if not rows:
            return None
        r = rows[0]
        policy = orjson.loads(r[1]) if r[1] is not None else None
        return PrivacySettings(r[0], policy, r[2], _aware(r[3]))

    def set_privacy(self, settings: PrivacySettings) -> None:
        s = settings
        policy = orjson.dumps(s.policy).decode() if s.policy is not None else None
        self._insert_rows(
            "project_privacy",
            ["project_id", "policy", "retention_days", "updated_at", "_version"],
            [
                [
                    s.project_id,
                    policy,
                    s.retention_days,
                    ch_ts(s.updated_at),
                    self._next_version(
                        "project_privacy", "project_id = {p:String}", {"p": s.project_id}
                    ),
                ]
            ],
        )

    def add_audit(self, entry: AuditEntry) -> None:
        e = entry
        try:
            self._insert_rows(
                "audit_log",
                ["project_id", "audit_id", "at", "actor", "action", "target", "details"],
                [[e.project_id, e.audit_id, ch_ts(e.at), e.actor, e.action, e.target,
                  orjson.dumps(e.details).decode()]],
            )  # fmt: skip
        except StoreError as err:
            raise StoreError(f"audit write failed: {err}") from err

    def list_audit(
        self, project_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[AuditEntry]:
        where = "project_id = {p:String}"
        params: dict[str, Any] = {"p": project_id, "limit": max(0, int(limit))}
        if before is not None:
            where += " AND `at` < {before:DateTime64(6, 'UTC')}"
            params["before"] = ch_ts(before)
        rows = self._q(
            "SELECT project_id, audit_id, `at`, actor, action, target, details FROM audit_log"  # noqa: S608
            f" WHERE {where} ORDER BY `at` DESC, audit_id DESC LIMIT {{limit:UInt64}}",
            params,
        )
        return [
            AuditEntry(r[0], r[1], _aware(r[2]), r[3], r[4], r[5], orjson.loads(r[6])) for r in rows
        ]

    # -- retention and erasure -----------------------------------------------------------------

    def _tables(self) -> set[str]:
        """Tables of this database: the data tables of parts not in this build are skipped."""
        rows = self._q("SELECT name FROM system.tables WHERE database = currentDatabase()")
        return {str(r[0]) for r in rows}

    def _count(self, table: str, where: str, params: dict[str, Any]) -> int:
        return int(self._q(f"SELECT count() FROM {table} WHERE {where}", params)[0][0])  # noqa: S608

    def purge_before(self, project_id: str, cutoff: datetime) -> Deleted:
        """Delete a project's data older than ``cutoff`` (lightweight deletes, no rewrite).

        The order matters without a transaction: the scores of the traces that lose spans are
        found through the spans, so they go first; a purge cut short is finished by the next.
        """
        tables = self._tables()
        p: dict[str, Any] = {"p": project_id, "c": ch_ts(cutoff)}
        num_scores = 0
        if "scores" in tables:
            # scores of the traces that lose spans, and scores older than the cutoff
            w = (
                "project_id = {p:String} AND (created_at < {c:DateTime64(6, 'UTC')} OR trace_id IN"
                " (SELECT trace_id FROM spans WHERE project_id = {p:String}"
                " AND start_time < {c:DateTime64(6, 'UTC')}))"
            )
            num_scores = self._count("scores", w, p)
            if num_scores:
                self._cmd(f"DELETE FROM scores WHERE {w}", p)  # noqa: S608
        # drift results quote the prompts and answers of their window as examples
        for table, col in (("outcomes", "created_at"), ("otel_logs", "`time`"),
                           ("otel_metric_points", "`time`"),
                           ("drift_results", "created_at")):  # fmt: skip
            if table in tables:
                w = f"project_id = {{p:String}} AND {col} < {{c:DateTime64(6, 'UTC')}}"
                if self._count(table, w, p):
                    self._cmd(f"DELETE FROM {table} WHERE {w}", p)  # noqa: S608
        w = "project_id = {p:String} AND start_time < {c:DateTime64(6, 'UTC')}"
        num_spans = int(
            self._q(
                f"SELECT count() FROM (SELECT 1 FROM spans WHERE {w} LIMIT 1 BY trace_id, span_id)",  # noqa: S608
                p,
            )[0][0]
        )
        if num_spans:
            self._cmd(f"DELETE FROM spans WHERE {w}", p)  # noqa: S608
        return Deleted(num_spans, num_scores)

    def erase_user(self, project_id: str, user_id: str) -> Deleted:
        """Delete a user's traces, their scores and log records, and the user's outcomes.

        A trace is the user's when any of its spans names them (child spans often do not).

        Mutations rewrite the parts that held the rows, so the erased values leave the files
        (once ClickHouse drops the old parts), unlike lightweight deletes, which only mask them.
        """
        tables = self._tables()
        base: dict[str, Any] = {"p": project_id, "u": user_id}
        # the ids first: a mutation on spans cannot read spans in its own subquery reliably
        traces = [
            str(r[0])
            for r in self._q(
                "SELECT DISTINCT trace_id FROM spans WHERE project_id = {p:String}"
                " AND user_id = {u:String}",
                base,
            )
        ]
        sessions = [
            str(r[0])
            for r in self._q(
                "SELECT DISTINCT session_id FROM spans WHERE project_id = {p:String}"
                " AND user_id = {u:String} AND session_id IS NOT NULL",
                base,
            )
        ]
        # the user id as it appears inside JSON text: a cheap filter before parsing it
        needle = orjson.dumps(user_id).decode()[1:-1]
        p = {**base, "t": traces, "s": sessions, "needle": needle}

        def erase(table: str, where: str, more: dict[str, Any] | None = None) -> int:
            if table not in tables:
                return 0
            params = {**p, **(more or {})}
            n = self._count(table, where, params)
            if n:
                self._cmd(f"ALTER TABLE {table} DELETE WHERE {where}{_ERASE_SYNC}", params)  # noqa: S608
            return n

        in_traces = "project_id = {p:String} AND trace_id IN {t:Array(String)}"
        # log records of the user's traces, and those naming the user in their attributes
        # (JSONExtractRaw: a number is its digits, as the span's user id is)
        names = ", ".join(f"'{name}'" for name in USER_ID_ATTRIBUTES)
        names_user = " OR ".join(
            f"arrayExists(k -> JSONExtractString({col}, k) = {{u:String}}"
            f" OR JSONExtractRaw({col}, k) = {{u:String}}, [{names}])"
            for col in ("attributes", "resource_attributes")
        )
        erase(
            "otel_logs",
            "project_id = {p:String} AND (trace_id IN {t:Array(String)}"
            " OR ((positionUTF8(attributes, {needle:String}) > 0"
            " OR positionUTF8(resource_attributes, {needle:String}) > 0)"
            f" AND ({names_user})))",
        )
        num_scores = erase(
            "scores",
            "project_id = {p:String} AND (user_id = {u:String} OR trace_id IN {t:Array(String)})",
        )
        erase(
            "outcomes",
            "project_id = {p:String} AND (user_id = {u:String} OR trace_id IN {t:Array(String)}"
            " OR session_id IN {s:Array(String)})",
        )
        # Dataset rows copied from the user's spans (id "trace_id:span_id") hold the same
        # prompts and answers; the datasets whose rows went get their new row count.
        in_rows = (
            "project_id = {p:String} AND (JSONExtractString(row_json, 'metadata', 'user_id')"
            " = {u:String} OR splitByChar(':', JSONExtractString(row_json, 'id'))[1]"
            " IN {t:Array(String)})"
        )
        if "dataset_rows" in tables:
            touched = [
                str(r[0])
                for r in self._q(
                    f"SELECT DISTINCT dataset_id FROM dataset_rows WHERE {in_rows}",  # noqa: S608
                    p,
                )
            ]
            erase("dataset_rows", in_rows)
            if touched:
                # a newer header row replaces the old one (ReplacingMergeTree, read FINAL)
                self._cmd(
                    "INSERT INTO datasets (project_id, dataset_id, name, filter, num_rows,"
                    " created_at) SELECT d.project_id, d.dataset_id, d.name, d.filter,"
                    " toInt32(c.n), d.created_at FROM (SELECT * FROM datasets FINAL"
                    " WHERE project_id = {p:String} AND dataset_id IN {ds:Array(String)}) d"
                    " LEFT JOIN (SELECT dataset_id, count() AS n FROM dataset_rows FINAL"
                    " WHERE project_id = {p:String} AND dataset_id IN {ds:Array(String)}"
                    " GROUP BY dataset_id) c ON c.dataset_id = d.dataset_id",
                    {**p, "ds": touched},
                )
        if "budget_alerts" in tables:
            # the thresholds a per-user budget alerted for the user (their id and spend); a
            # budget of another scope whose value happens to equal the id keeps its marks
            others = [
                str(r[0])
                for r in self._q(
                    "SELECT name FROM budgets FINAL WHERE project_id = {p:String}"
                    " AND JSONExtractString(spec, 'scope') != 'user'",
                    p,
                )
            ]
            erase(
                "budget_alerts",
                "project_id = {p:String} AND scope_value = {u:String}"
                " AND budget NOT IN {others:Array(String)}",
                {"others": others},
            )
        num_spans = 0
        if traces and "drift_results" in tables:
            self._scrub_drift_examples(p)
        if traces:
            num_spans = int(
                self._q(
                    f"SELECT count() FROM (SELECT 1 FROM spans WHERE {in_traces}"  # noqa: S608
                    " LIMIT 1 BY trace_id, span_id)",
                    p,
                )[0][0]
            )
            self._cmd(f"ALTER TABLE spans DELETE WHERE {in_traces}{_ERASE_SYNC}", p)  # noqa: S608
        return Deleted(num_spans, num_scores)

    def _scrub_drift_examples(self, p: dict[str, Any]) -> None:
        """Remove the prompts and answers of the traces ``p["t"]`` quoted in drift results."""
        texts = example_texts(
            (str(r[0]) if r[0] is not None else None, str(r[1]) if r[1] is not None else None)
            for r in self._q(
                "SELECT input, output FROM spans WHERE project_id = {p:String}"
                " AND trace_id IN {t:Array(String)}",
                p,
            )
        )
        if not texts:
            return
        ids, values = [], []
        for result_id, details in self._q(
            "SELECT result_id, details FROM drift_results WHERE project_id = {p:String}"
            " AND position(details, '\"examples\"') > 0",
            p,
        ):
            new = scrub_examples(orjson.loads(details), texts)
            if new is not None:
                ids.append(str(result_id))
                values.append(orjson.dumps(new).decode())
        if ids:
            # one mutation for every result: each ALTER rewrites the parts it touches
            self._cmd(
                "ALTER TABLE drift_results UPDATE details = transform(result_id,"
                " {ids:Array(String)}, {vals:Array(String)}, details)"
                " WHERE project_id = {p:String} AND result_id IN {ids:Array(String)}"
                f"{_ERASE_SYNC}",
                {"p": p["p"], "ids": ids, "vals": values},
            )

    # -- budgets -------------------------------------------------------------------------------

    def list_budgets(self, project_id: str) -> list[BudgetRow]:
        rows = self._q(
            "SELECT name, spec, source, created_at, updated_at FROM budgets FINAL"
            " WHERE project_id = {p:String} ORDER BY name",
            {"p": project_id},
        )
        return [
            BudgetRow(project_id, r[0], orjson.loads(r[1]), r[2], _aware(r[3]), _aware(r[4]))
            for r in rows
        ]

    def put_budget(self, row: BudgetRow) -> None:
        # an update keeps the first creation time, as DuckDB's ON CONFLICT DO UPDATE does
        prev = self._q(
            "SELECT created_at FROM budgets FINAL WHERE project_id = {p:String}"
            " AND name = {n:String}",
            {"p": row.project_id, "n": row.name},
        )
        created = prev[0][0] if prev else ch_ts(row.created_at)
        self._insert_rows(
            "budgets",
            ["project_id", "name", "spec", "source", "created_at", "updated_at", "_version",
             "_deleted"],
            [[row.project_id, row.name, orjson.dumps(row.spec).decode(), row.source, created,
              ch_ts(row.updated_at),
              self._next_version("budgets", _BUDGET, {"p": row.project_id, "n": row.name}), 0]],
        )  # fmt: skip

    def delete_budget(self, project_id: str, name: str) -> bool:
        prev = self._q(
            "SELECT spec, source, created_at, updated_at FROM budgets FINAL"
            " WHERE project_id = {p:String} AND name = {n:String}",
            {"p": project_id, "n": name},
        )
        if not prev:
            return False
        self._insert_rows(
            "budgets",
            ["project_id", "name", "spec", "source", "created_at", "updated_at", "_version",
             "_deleted"],
            [[project_id, name, *prev[0],
              self._next_version("budgets", _BUDGET, {"p": project_id, "n": name}), 1]],
        )  # fmt: skip
        return True

    @staticmethod
    def _budget_column(column: str) -> str:
        if column not in _BUDGET_COLUMNS:
            raise ValueError(f"not a budget scope column: {column!r}")
        return _BUDGET_COLUMNS[column]

    def budget_spend(
        self,
        project_id: str,
        since: datetime,
        *,
        column: str | None = None,
        value: str | None = None,
        until: datetime | None = None,
    ) -> BudgetSpend:
        sql = (
            "SELECT sum(cost_usd), count(cost_usd), max(cost_usd) FROM spans"
            " WHERE project_id = {p:String} AND start_time >= {since:DateTime64(6, 'UTC')}"
            " AND cost_usd IS NOT NULL"
        )
        params: dict[str, Any] = {"p": project_id, "since": ch_ts(since)}
        if until is not None:
            sql += " AND start_time < {until:DateTime64(6, 'UTC')}"
            params["until"] = ch_ts(until)
        if column is not None:
            sql += f" AND {self._budget_column(column)} = {{v:Nullable(String)}}"
            params["v"] = value
        r = self._q(sql, params)[0]
        return BudgetSpend(float(r[0] or 0.0), int(r[1] or 0), float(r[2] or 0.0))

    def budget_spend_by(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, float]:
        each = self.budget_spend_each(project_id, since, column, until=until)
        return {k: v.spent_usd for k, v in each.items()}

    def budget_spend_each(
        self, project_id: str, since: datetime, column: str, *, until: datetime | None = None
    ) -> dict[str, BudgetSpend]:
        col = self._budget_column(column)
        params: dict[str, Any] = {"p": project_id, "since": ch_ts(since)}
        bound = ""
        if until is not None:
            bound = " AND start_time < {until:DateTime64(6, 'UTC')}"
            params["until"] = ch_ts(until)
        rows = self._q(
            f"SELECT {col} AS _v, sum(cost_usd), count(cost_usd), max(cost_usd) FROM spans"  # noqa: S608 - col is from _BUDGET_COLUMNS
            f" WHERE project_id = {{p:String}} AND start_time >= {{since:DateTime64(6, 'UTC')}}"
            f"{bound} AND cost_usd IS NOT NULL AND _v IS NOT NULL GROUP BY _v",
            params,
        )
        return {str(r[0]): BudgetSpend(float(r[1]), int(r[2]), float(r[3])) for r in rows}

    def mark_budget_alert(
        self,
        project_id: str,
        budget: str,
        scope_value: str,
        period_start: datetime,
        threshold: float,
        spent_usd: float,
        at: datetime,
        deliveries: Sequence[Delivery] = (),
    ) -> bool:
        # a uniqueness claim: of two monitors racing, one marks (and alerts) the threshold;
        # no transactions here: the winner stores its deliveries right after the claim
        params = {"p": project_id, "b": budget, "v": scope_value,
                  "ps": ch_ts(period_start), "th": float(threshold)}  # fmt: skip

        def seen() -> bool:
            rows = self._q(
                "SELECT count() FROM budget_alerts WHERE project_id = {p:String}"
                " AND budget = {b:String} AND scope_value = {v:String}"
                " AND period_start = {ps:DateTime64(6, 'UTC')} AND threshold = {th:Float64}",
                params,
            )
            return bool(rows[0][0])

        key = "\x00".join(
            (project_id, budget, scope_value, str(ch_us(period_start)), repr(float(threshold)))
        )
        try:
            self._create_unique(
                "budget_alert",
                key,
                exists=seen,
                create=lambda: self._insert_rows(
                    "budget_alerts",
                    [
                        "project_id",
                        "budget",
                        "scope_value",
                        "period_start",
                        "threshold",
                        "spent_usd",
                        "fired_at",
                    ],
                    [
                        [
                            project_id,
                            budget,
                            scope_value,
                            ch_ts(period_start),
                            float(threshold),
                            float(spent_usd),
                            ch_ts(at),
                        ]
                    ],
                ),  # fmt: skip
                what=f"budget alert {budget!r} at {threshold}",
            )
        except KeyTaken:
            return False
        for d in deliveries:
            self.save_delivery(d)
        return True

    # -- the prompt registry -------------------------------------------------------------------

    def _prompt_labels(self, project_id: str, name: str) -> dict[int, list[str]]:
        rows = self._q(
            "SELECT version, label FROM prompt_labels FINAL"
            " WHERE project_id = {p:String} AND name = {n:String} ORDER BY label",
            {"p": project_id, "n": name},
        )
        out: dict[int, list[str]] = {}
        for v, label in rows:
            out.setdefault(int(v), []).append(str(label))
        return out

    @staticmethod
    def _prompt(r: tuple[Any, ...] | list[Any], labels: list[str]) -> PromptVersion:
        template = orjson.loads(r[5]) if r[4] == "chat" else r[5]
        return PromptVersion(
            project_id=r[0],
            name=r[1],
            version=int(r[2]),
            kind=r[3],
            type=r[4],
            template=template,
            model=r[6],
            parameters=orjson.loads(r[7]),
            labels=labels,
            author=r[8],
            message=r[9],
            created_at=_aware(r[10]),
        )

    def _put_label(
        self, project_id: str, name: str, label: str, version: int, at: datetime, by: str | None
    ) -> None:
        self._insert_rows(
            "prompt_labels",
            ["project_id", "name", "label", "version", "updated_at", "updated_by", "_version",
             "_deleted"],
            [[project_id, name, label, version, ch_ts(at), by,
              self._next_version("prompt_labels", _LABEL, {"p": project_id, "n": name,
                                                           "l": label}), 0]],
        )  # fmt: skip

    def add_prompt_version(
        self, pv: PromptVersion, *, labels: list[str], updated_by: str | None
    ) -> PromptVersion:
        template = (
            pv.template if isinstance(pv.template, str) else orjson.dumps(pv.template).decode()
        )
        where = {"p": pv.project_id, "n": pv.name}
        # max + 1 under a uniqueness claim on the number: of two servers adding a version of
        # one prompt at once, one takes N and the other, finding N taken, N + 1
        for _ in range(_PROMPT_ATTEMPTS):
            row = self._q(
                "SELECT max(version), any(kind), count() FROM prompt_versions FINAL"
                " WHERE project_id = {p:String} AND name = {n:String}",
                where,
            )[0]
            if row[2] and row[1] != pv.kind:
                raise Conflict(
                    f"{pv.name!r} is a {row[1]}; a new version cannot make it a {pv.kind}"
                )
            version = int(row[0] or 0) + 1 if row[2] else 1
            values = [pv.project_id, pv.name, version, pv.kind, pv.type, template, pv.model,
                      orjson.dumps(pv.parameters).decode(), pv.author, pv.message,
                      ch_ts(pv.created_at)]  # fmt: skip

            def taken(v: int = version) -> bool:
                rows = self._q(
                    "SELECT count() FROM prompt_versions FINAL WHERE project_id = {p:String}"
                    " AND name = {n:String} AND version = {v:Int64}",
                    {**where, "v": v},
                )
                return bool(rows[0][0])

            def create(vals: list[Any] = values) -> None:
                self._insert_rows(
                    "prompt_versions",
                    [*(c.strip() for c in _PROMPT_COLS.split(",")), "_version"],
                    [[*vals, self._version()]],
                )

            try:
                self._create_unique(
                    "prompt_version",
                    f"{pv.project_id}\x00{pv.name}\x00{version}",
                    exists=taken,
                    create=create,
                    what=f"version {version} of prompt {pv.name!r}",
                )
                break
            except KeyTaken:
                continue
        else:
            raise Conflict(f"prompt {pv.name!r} is being changed by other requests; try again")
        for label in labels:
            self._put_label(pv.project_id, pv.name, label, version, pv.created_at, updated_by)
        got = self._prompt_labels(pv.project_id, pv.name).get(version, [])
        return self._prompt(values, got)

    def list_prompts(self, project_id: str, kind: str | None = None) -> list[PromptSummary]:
        where = "project_id = {p:String}"
        params: dict[str, Any] = {"p": project_id}
        if kind is not None:
            where += " AND kind = {k:String}"
            params["k"] = kind
        rows = self._q(
            "SELECT name, any(kind), max(version), count(), max(created_at)"  # noqa: S608
            f" FROM prompt_versions FINAL WHERE {where} GROUP BY name ORDER BY name",
            params,
        )
        labels = self._q(
            "SELECT name, label, version FROM prompt_labels FINAL WHERE project_id = {p:String}"
            " ORDER BY name, label",
            {"p": project_id},
        )
        by_name: dict[str, dict[str, int]] = {}
        for name, label, version in labels:
            by_name.setdefault(name, {})[label] = int(version)
        return [
            PromptSummary(
                name=r[0],
                kind=r[1],
                latest_version=int(r[2]),
                num_versions=int(r[3]),
                labels=by_name.get(r[0], {}),
                updated_at=_aware(r[4]),
            )
            for r in rows
        ]

    def list_prompt_versions(self, project_id: str, name: str) -> list[PromptVersion]:
        rows = self._q(
            f"SELECT {_PROMPT_COLS} FROM prompt_versions FINAL"  # noqa: S608
            " WHERE project_id = {p:String} AND name = {n:String} ORDER BY version",
            {"p": project_id, "n": name},
        )
        labels = self._prompt_labels(project_id, name)
        return [self._prompt(r, labels.get(int(r[2]), [])) for r in rows]

    def _label_version(self, project_id: str, name: str, label: str) -> int | None:
        rows = self._q(
            "SELECT version FROM prompt_labels FINAL WHERE project_id = {p:String}"
            " AND name = {n:String} AND label = {l:String}",
            {"p": project_id, "n": name, "l": label},
        )
        return int(rows[0][0]) if rows else None

    def get_prompt_version(
        self, project_id: str, name: str, *, version: int | None = None, label: str | None = None
    ) -> PromptVersion | None:
        if version is None and label is not None and label != "latest":
            version = self._label_version(project_id, name, label)
            if version is None:
                return None
        params: dict[str, Any] = {"p": project_id, "n": name}
        if version is None:
            tail = " ORDER BY version DESC LIMIT 1"
        else:
            tail = " AND version = {v:Int64}"
            params["v"] = int(version)
        rows = self._q(
            f"SELECT {_PROMPT_COLS} FROM prompt_versions FINAL"  # noqa: S608
            " WHERE project_id = {p:String} AND name = {n:String}" + tail,
            params,
        )
        if not rows:
            return None
        labels = self._prompt_labels(project_id, name)
        return self._prompt(rows[0], labels.get(int(rows[0][2]), []))

    def set_prompt_label(
        self,
        project_id: str,
        name: str,
        label: str,
        version: int,
        *,
        at: datetime,
        updated_by: str | None,
    ) -> int | None:
        exists = self._q(
            "SELECT count() FROM prompt_versions FINAL WHERE project_id = {p:String}"
            " AND name = {n:String} AND version = {v:Int64}",
            {"p": project_id, "n": name, "v": int(version)},
        )
        if not exists[0][0]:
            raise NotFound(f"prompt {name!r} has no version {version}")
        prev = self._label_version(project_id, name, label)
        self._put_label(project_id, name, label, version, at, updated_by)
        return prev

    def delete_prompt_label(self, project_id: str, name: str, label: str) -> int | None:
        prev = self._label_version(project_id, name, label)
        if prev is not None:
            self._insert_rows(
                "prompt_labels",
                ["project_id", "name", "label", "version", "updated_at", "updated_by",
                 "_version", "_deleted"],
                [[project_id, name, label, prev, _now(), None,
                  self._next_version("prompt_labels", _LABEL, {"p": project_id, "n": name,
                                                               "l": label}), 1]],
            )  # fmt: skip
        return prev
