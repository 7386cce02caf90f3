"""One conversation state per patient: which open invitation a short reply answers (pure).

Every outbound SMS that invites a reply records what a reply to it means (confirm an
appointment, answer check-in question N). A bare code ("1", "yes", "2", "三") means something
only against what the patient was asked: ``read_reply`` decides which open invitation it answers,
and never guesses when it fits two of them (the patient is asked back) or none (the patient is
told that nothing is open, and free text is welcome). Words and compact codes ("HB1 F37.5") are
not bare codes: they keep their own reading.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CONFIRM = "confirm"
CHECKIN = "checkin"

Route = Literal["confirm", "checkin", "ask_back", "no_invitation", "text"]


@dataclass(frozen=True)
class Reading:
    """What a reply answers: ``route`` and, when asked back, the invitations it fits."""

    route: Route
    candidates: tuple[str, ...] = ()


def read_reply(
    *, fits_confirm: bool, fits_checkin: bool, open_invitations: Iterable[str]
) -> Reading:
    """The invitation a reply answers.

    ``fits_confirm``: the text is a bare confirmation or date-change code ("1", "yes", "2");
    ``fits_checkin``: it is a bare answer to the open check-in question; ``open_invitations``:
    the kinds of the patient's unexpired invitations whose message was handed to the provider.
    """
    if not (fits_confirm or fits_checkin):
        return Reading("text")
    fits = {CONFIRM: fits_confirm, CHECKIN: fits_checkin}
    candidates = tuple(dict.fromkeys(kind for kind in open_invitations if fits.get(kind)))
    if len(candidates) > 1:
        return Reading("ask_back", candidates)
    if len(candidates) == 1:
        return Reading(candidates[0])  # type: ignore[arg-type]
    return Reading("no_invitation") if fits_confirm else Reading("text")
