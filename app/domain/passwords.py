"""How guessable a new password is, by zxcvbn (Dropbox's estimator, which knows common passwords,
keyboard rows, sequences, dates, names and l33t substitutions)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zxcvbn import zxcvbn

# zxcvbn looks at no more than this many characters (its cost grows with the length).
MAX_CHECKED_LENGTH = 100


@dataclass(frozen=True)
class Strength:
    """zxcvbn's verdict: score 0 (too guessable) to 4 (very unguessable), and its advice in
    English (warning may be empty); the web layer translates the advice."""

    score: int
    warning: str
    suggestions: tuple[str, ...]


def password_strength(password: str, user_inputs: Iterable[str] = ()) -> Strength:
    """Score a password; `user_inputs` (username, name) count as easy to guess."""
    result = zxcvbn(password[:MAX_CHECKED_LENGTH], user_inputs=[u for u in user_inputs if u])
    feedback = result.get("feedback") or {}
    return Strength(
        score=int(result["score"]),
        warning=str(feedback.get("warning") or ""),
        suggestions=tuple(str(s) for s in feedback.get("suggestions") or ()),
    )
