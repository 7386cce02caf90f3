"""Staff accounts: create, authenticate (argon2), reset passwords, change roles and languages."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from sqlalchemy import func, select

from app.domain.passwords import password_strength
from app.extensions import db
from app.models import ROLES, User, utcnow
from app.services.shared import audit, sessions

LOCALES = ("zh", "en")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
DEFAULT_PASSWORD_MIN_SCORE = 3
# Words anyone could guess for this site's accounts (zxcvbn counts them as easy).
SITE_WORDS = ("cadence", "jsch", "jiangsu", "nanjing", "hospital", "nurse", "admin")

# Permissions by role. Nurses and investigators run the study; admins manage accounts.
PERMISSIONS: dict[str, frozenset[str]] = {
    "patients.view": frozenset(ROLES),
    "patients.write": frozenset({"nurse", "investigator"}),
    "audit.view": frozenset(ROLES),
    "users.manage": frozenset({"admin"}),
}


class UserError(ValueError):
    """A user-management request that cannot be done.

    `code` names the problem (for translated messages), `field` the form field at fault.
    """

    def __init__(
        self,
        message: str,
        field: str | None = None,
        code: str = "invalid",
        advice: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.advice = advice


class UserNotFound(LookupError):
    """No account with that username or id."""


@dataclass(frozen=True)
class PasswordChange:
    """The result of a password reset: the account and the new password (shown once)."""

    user: User
    password: str


def has_permission(role: str | None, permission: str) -> bool:
    """True when a role grants a permission (unknown permissions are denied)."""
    return role is not None and role in PERMISSIONS.get(permission, frozenset())


def generate_password() -> str:
    """A random password that is easy to type from a printout (about 95 bits)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4)]
    return "-".join(groups)


def normalise_username(username: str) -> str:
    """Usernames are case-insensitive: stored and compared in lower case."""
    return (username or "").strip().lower()


def check_password_rules(password: str, username: str = "") -> None:
    """Raise UserError when a new password is too weak."""
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise UserError(
            f"at least {MIN_PASSWORD_LENGTH} characters", "password", "password_too_short"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(
            f"at most {MAX_PASSWORD_LENGTH} characters", "password", "password_too_long"
        )
    if username and username.lower() in password.lower():
        raise UserError(
            "the password must not contain the username", "password", "password_has_username"
        )
    if len(set(password)) < 4:
        raise UserError("too few different characters", "password", "password_too_simple")
    _check_guessability(password, username)


def _check_guessability(password: str, username: str) -> None:
    """Refuse common and guessable passwords (zxcvbn score below PASSWORD_MIN_SCORE)."""
    minimum = int(current_app.config.get("PASSWORD_MIN_SCORE", DEFAULT_PASSWORD_MIN_SCORE))
    inputs = [username, *re.split(r"[._-]", username), *SITE_WORDS]
    strength = password_strength(password, inputs)
    if strength.score >= minimum:
        return
    advice = tuple(a for a in (strength.warning, *strength.suggestions) if a)
    raise UserError(
        " ".join(("the password is too easy to guess.", *advice)),
        "password",
        "password_guessable",
        advice,
    )


def hash_password(password: str) -> str:
    """The argon2id hash of a password, with the configured cost."""
    return _hasher().hash(password)


def create_user(
    username: str,
    *,
    display_name: str,
    role: str,
    password: str,
    actor: str,
    locale: str = "zh",
    must_change_password: bool = False,
) -> User:
    """Create an account (audited); raise UserError for a bad username, role or password."""
    name = normalise_username(username)
    if not USERNAME_PATTERN.match(name):
        raise UserError(
            "2-64 lower-case letters, digits, '.', '-' or '_'", "username", "username_invalid"
        )
    if db.session.scalar(select(User.id).where(User.username == name)):
        raise UserError(f"the username {name} is taken", "username", "username_taken")
    _check_role(role)
    _check_locale(locale)
    display = (display_name or "").strip() or name
    check_password_rules(password, name)
    user = User(
        username=name,
        display_name=display[:120],
        role=role,
        password_hash=hash_password(password),
        locale=locale,
        active=True,
        must_change_password=must_change_password,
    )
    db.session.add(user)
    db.session.flush()
    audit.record(actor, "user.create", entity_type="user", entity_id=name, after=_snapshot(user))
    db.session.commit()
    return user


def get_user(ref: str | int) -> User:
    """An account by id or username, or raise UserNotFound."""
    user = None
    if isinstance(ref, int):
        user = db.session.get(User, ref)
    else:
        user = db.session.scalar(select(User).where(User.username == normalise_username(ref)))
    if user is None:
        raise UserNotFound(f"no user {ref!r}")
    return user


def list_users() -> list[User]:
    """Every account, admins first, then by name."""
    return list(db.session.scalars(select(User).order_by(User.role, User.username)))


def count_users() -> int:
    """How many accounts exist."""
    return db.session.scalar(select(func.count(User.id))) or 0


def load_session_user(session_id: str) -> User | None:
    """Flask-Login loader: the active user whose id and password token match, else None."""
    user_id, _, token = (session_id or "").partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active:
        return None
    return user if secrets.compare_digest(user.session_token, token) else None


def authenticate(username: str, password: str, *, now: datetime | None = None) -> User | None:
    """The active user with this username and password, or None; audits every attempt."""
    name = normalise_username(username)[:64]
    user = db.session.scalar(select(User).where(User.username == name)) if name else None
    if user is None or not user.is_active:
        _verify(_dummy_hash(), password or "")
        # An unknown name is not stored: people sometimes type a password into that field.
        known = user.username if user is not None else None
        audit.record("system", "user.sign_in_failed", entity_type="user", entity_id=known)
        db.session.commit()
        return None
    if not _verify(user.password_hash, password or ""):
        audit.record("system", "user.sign_in_failed", entity_type="user", entity_id=user.username)
        db.session.commit()
        return None
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = now or utcnow()
    audit.record(user.actor, "user.sign_in", entity_type="user", entity_id=user.username)
    db.session.commit()
    return user


def record_sign_out(user: User) -> None:
    """Audit a sign-out (manual or after the idle timeout)."""
    audit.record(user.actor, "user.sign_out", entity_type="user", entity_id=user.username)
    db.session.commit()


def reset_password(
    ref: str | int, *, actor: str, password: str | None = None, must_change: bool = True
) -> PasswordChange:
    """Give an account a new password (random unless given); the user must change it at sign-in."""
    user = get_user(ref)
    new_password = password or generate_password()
    check_password_rules(new_password, user.username)
    user.password_hash = hash_password(new_password)
    user.must_change_password = must_change
    sessions.end_user_sessions(user, "password_reset")
    audit.record(
        actor,
        "user.password_reset",
        entity_type="user",
        entity_id=user.username,
        after={"must_change_password": must_change},
    )
    db.session.commit()
    return PasswordChange(user=user, password=new_password)


def change_own_password(user: User, current: str, new: str) -> None:
    """A signed-in user changes their password; the current one must be right.

    Every session of the user ends (the caller opens a new one for the current browser).
    """
    if not _verify(user.password_hash, current or ""):
        raise UserError("the current password is not right", "current_password", "wrong_password")
    if current == new:
        raise UserError(
            "choose a password different from the current one", "new_password", "same_password"
        )
    try:
        check_password_rules(new, user.username)
    except UserError as exc:
        raise UserError(str(exc), "new_password", exc.code, exc.advice) from exc
    user.password_hash = hash_password(new)
    user.must_change_password = False
    sessions.end_user_sessions(user, "password_change")
    audit.record(user.actor, "user.password_change", entity_type="user", entity_id=user.username)
    db.session.commit()


def set_locale(user: User, locale: str) -> None:
    """Remember the language a user chose for the web UI."""
    _check_locale(locale)
    if user.locale != locale:
        user.locale = locale
        db.session.commit()


def update_user(
    ref: str | int,
    *,
    actor: str,
    display_name: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    locale: str | None = None,
) -> User:
    """Change an account's name, role, language or active flag (audited).

    The last active admin cannot be demoted or deactivated, so nobody is locked out.
    """
    user = get_user(ref)
    before = _snapshot(user)
    if role is not None:
        _check_role(role)
    if locale is not None:
        _check_locale(locale)
    losing_admin = (
        user.role == "admin"
        and user.active
        and ((role is not None and role != "admin") or active is False)
    )
    if losing_admin and _active_admin_count() <= 1:
        raise UserError("this is the last active admin account", "role", "last_admin")
    if display_name is not None and display_name.strip():
        user.display_name = display_name.strip()[:120]
    if role is not None:
        user.role = role
    if active is not None:
        user.active = active
        if not active:
            sessions.end_user_sessions(user, "deactivated")
    if locale is not None:
        user.locale = locale
    after = _snapshot(user)
    if after != before:
        audit.record(
            actor,
            "user.update",
            entity_type="user",
            entity_id=user.username,
            before=before,
            after=after,
        )
    db.session.commit()
    return user


def _active_admin_count() -> int:
    query = select(func.count(User.id)).where(User.role == "admin", User.active.is_(True))
    return db.session.scalar(query) or 0


def _snapshot(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "locale": user.locale,
        "active": bool(user.active),
    }


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", "role", "role_invalid")


def _check_locale(locale: str) -> None:
    if locale not in LOCALES:
        raise UserError(f"language must be one of {', '.join(LOCALES)}", "locale", "locale_invalid")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _hasher() -> PasswordHasher:
    config = current_app.config
    return _hasher_for(
        int(config.get("ARGON2_TIME_COST", 3)),
        int(config.get("ARGON2_MEMORY_COST", 65536)),
        int(config.get("ARGON2_PARALLELISM", 4)),
    )


@lru_cache(maxsize=4)
def _hasher_for(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so timing does not reveal usernames."""
    return _dummy_hash_for(id(_hasher()))


_DUMMY_HASHES: dict[int, str] = {}


def _dummy_hash_for(key: int) -> str:
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = _hasher().hash(secrets.token_hex(16))
    return _DUMMY_HASHES[key]
