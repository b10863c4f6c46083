"""Records of dashboard users, their sessions and project memberships."""

from __future__ import annotations

import dataclasses
from datetime import datetime

__all__ = ["Membership", "User", "UserSession"]


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """A person who logs in to the dashboard."""

    user_id: str
    email: str
    password_hash: str
    """argon2id hash (never the password)."""
    is_admin: bool
    """Server admins create projects and manage members."""
    created_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class UserSession:
    """A logged-in browser: the cookie holds the token, the store its SHA-256."""

    session_hash: str
    user_id: str
    csrf_token: str
    """The token every form of this session must send back."""
    created_at: datetime
    expires_at: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    """A user's access to a project."""

    user_id: str
    project_id: str
    role: str
    """``viewer`` or ``admin`` (of the project)."""
    created_at: datetime
