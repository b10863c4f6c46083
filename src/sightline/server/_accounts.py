"""Dashboard accounts: argon2id passwords, login sessions, CSRF tokens, first-run bootstrap."""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sightline.config import Settings
from sightline.errors import ConfigError, Conflict
from sightline.store._users import Membership, User, UserSession
from sightline.store.base import TraceStore

__all__ = ["Accounts", "LoggedIn", "MIN_PASSWORD_CHARS", "SetupUsed"]

log = structlog.get_logger("sightline.accounts")

MIN_PASSWORD_CHARS = 12
_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SetupUsed(ConfigError):
    """The setup link was used (or never existed): the page answers 404."""


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The user of a request and the projects they may see."""

    user: User
    session: UserSession
    projects: tuple[str, ...]


class Accounts:
    """Users, sessions and memberships, over the store."""

    def __init__(self, store: TraceStore, settings: Settings) -> None:
        self._store = store
        self._session_s = settings.session_days * 86400
        self.setup_token: str | None = None
        """One-time token of the setup link, while no user exists and none was configured."""
        self._setup_lock = threading.Lock()
        """Held from the check of the setup token to its clearing (``claim_setup``)."""

    # -- users -----------------------------------------------------------------------------

    @staticmethod
    def _new_user(email: str, password: str, *, is_admin: bool) -> User:
        """A user record (password hashed: the slow part), not stored; ConfigError if bad."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
            raise ConfigError("email: expected an address such as ada@example.com")
        if len(password) < MIN_PASSWORD_CHARS:
            raise ConfigError(f"password: at least {MIN_PASSWORD_CHARS} characters")
        return User(
            secrets.token_hex(8), email, _HASHER.hash(password), is_admin, datetime.now(UTC)
        )

    def create_user(self, email: str, password: str, *, is_admin: bool = False) -> User:
        """Add a user; ConfigError on a bad email, a short password or a taken email."""
        user = self._new_user(email, password, is_admin=is_admin)
        self._store.create_user(user)
        return user

    def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches, else None (same work either way)."""
        user = self._store.get_user_by_email(email.strip().lower())
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def add_member(self, user_id: str, project_id: str, role: str = "viewer") -> None:
        """Give a user access to a project."""
        if role not in ("viewer", "admin"):
            raise ConfigError("role: expected viewer or admin")
        self._store.add_membership(Membership(user_id, project_id, role, datetime.now(UTC)))

    def projects_of(self, user: User) -> tuple[str, ...]:
        """The projects a user belongs to."""
        return tuple(m.project_id for m in self._store.list_memberships(user.user_id))

    # -- sessions --------------------------------------------------------------------------

    def login(self, user: User) -> tuple[str, UserSession]:
        """A new session for ``user``: its cookie token (shown once) and its record."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        sess = UserSession(
            _sha(token), user.user_id, secrets.token_urlsafe(32), now,
            now + timedelta(seconds=self._session_s),
        )  # fmt: skip
        self._store.create_session(sess)
        return token, sess

    def resolve(self, token: str | None) -> LoggedIn | None:
        """The logged-in user of a session cookie, or None."""
        if not token or len(token) > 200:
            return None
        sess = self._store.get_session(_sha(token), datetime.now(UTC))
        if sess is None:
            return None
        user = self._store.get_user(sess.user_id)
        if user is None:
            return None
        return LoggedIn(user, sess, self.projects_of(user))

    def logout(self, token: str) -> None:
        """End the session of a cookie token."""
        self._store.delete_session(_sha(token))

    # -- first run -------------------------------------------------------------------------

    def bootstrap(self, settings: Settings) -> None:
        """First run: create the configured admin, or make a one-time setup token.

        The configured admin (``init_admin_email``) joins every existing project, and
        ``init_project`` at every start.
        """
        email = settings.init_admin_email
        password = settings.init_admin_password
        if email and password is None:
            raise ConfigError("SIGHTLINE_INIT_ADMIN_EMAIL needs SIGHTLINE_INIT_ADMIN_PASSWORD")
        if self._store.count_users() == 0:
            if email and password is not None:
                try:
                    user = self.create_user(email, password.get_secret_value(), is_admin=True)
                except (ConfigError, Conflict):
                    # another process booting with the same settings created it at once
                    if self._store.get_user_by_email(email.strip().lower()) is None:
                        raise
                else:
                    for p in self._store.list_projects():
                        self.add_member(user.user_id, p.id, "admin")
                    log.info("admin_created", email=user.email)
            else:
                self.setup_token = secrets.token_urlsafe(24)
        if email and settings.init_project:
            admin = self._store.get_user_by_email(email)
            if admin is not None and settings.init_project not in self.projects_of(admin):
                self.add_member(admin.user_id, settings.init_project, "admin")

    def setup_open(self, token: str) -> bool:
        """True while ``token`` is the unused setup token."""
        current = self.setup_token
        # as bytes: compare_digest raises TypeError on a str with a non-ASCII character
        return current is not None and secrets.compare_digest(
            token.encode("utf-8", "surrogatepass"), current.encode()
        )

    def claim_setup(self, token: str, email: str, password: str) -> User:
        """Create the first admin through the setup link, once.

        Of concurrent claims exactly one wins: the password is hashed first (slow, outside the
        lock), then the token is checked and taken under a lock, and the user is written only
        if no user exists, in one conditional store operation (which also holds against other
        processes, each with a setup token of its own). Raises ConfigError for a bad email or
        password (the link stays usable), and SetupUsed when the link was used or is unknown.
        """
        user = self._new_user(email, password, is_admin=True)
        with self._setup_lock:
            if not self.setup_open(token):
                raise SetupUsed("this setup link is used or unknown")
            self.setup_token = None  # taken: a concurrent claim fails the check above
            try:
                created = self._store.create_first_user(user)
            except BaseException:
                self.setup_token = token  # nothing was written: the link still works
                raise
        if not created:
            raise SetupUsed("an admin exists already")
        for p in self._store.list_projects():
            self.add_member(user.user_id, p.id, "admin")
        return user
