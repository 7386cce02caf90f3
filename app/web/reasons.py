"""Triage reasons for people: the stored record ("rule_id: English text") rendered in the
reader's language from the rule id and the parameters read back from the text.

The alert keeps the English text for the record; the page shows a label translated through the
catalogs. A reason is parsed against its rule's template (app/protocols/triage_rules.yaml): each
``{placeholder}`` becomes a parameter, symptom codes, levels, phases and intents are translated
too. A reason that is not from a rule (reschedule, opt-out, call tasks, safety net) has its own
label; anything unknown is shown as stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from flask_babel import lazy_gettext as _l

from app.domain.triage import load_triage_rules
from app.web import labels, terms

# The English of every rule's reason, word for word as in triage_rules.yaml (a test keeps them
# equal), so the catalogs carry a translation of each.
RULE_TEXTS: dict[str, Any] = {
    "temperature_high": _l("temperature {temperature} C >= {threshold}"),
    "fever_without_reading": _l(
        "fever reported without a temperature reading ('{evidence}'): treated as >= 38.0 C"
    ),
    "hematemesis": _l("vomiting blood ('{evidence}')"),
    "melena": _l("black or bloody stools ('{evidence}')"),
    "dysphagia_liquids": _l("cannot swallow liquids or saliva ('{evidence}')"),
    "dyspnea_at_rest": _l("shortness of breath at rest or severe ('{evidence}')"),
    "chest_pain": _l("chest pain ('{evidence}')"),
    "diarrhea_7_or_more": _l("diarrhoea {stools_over_baseline} stools a day over baseline >= 7"),
    "diarrhea_severe": _l("severe diarrhoea, grade {grade} ('{evidence}')"),
    "diarrhea_with_fever": _l("diarrhoea with fever"),
    "syncope": _l("fainting or confusion ('{evidence}')"),
    "grade_4": _l("{code} grade {grade}: life-threatening"),
    "distress": _l("patient in distress or calling for emergency help"),
    "bleeding": _l("bleeding (coughing up blood or bleeding that does not stop)"),
    "jaundice": _l("yellow eyes or skin, or dark (tea-coloured) urine: possible immune hepatitis"),
    "no_urine": _l("no urine passed: dehydration or kidney injury"),
    "seizure": _l("seizure or convulsion"),
    "anaphylaxis": _l(
        "swelling of lips, face or throat, or wheeze: possible anaphylaxis (call 120)"
    ),
    "blistering_with_rash_or_sore_mouth": _l(
        "blistering or peeling skin with a rash or sore mouth: possible SJS/TEN"
    ),
    "fluids_not_kept_down": _l("cannot keep fluids down"),
    "drowsy_or_confused": _l("drowsy and hard to wake, or newly confused"),
    "rigid_abdomen": _l("rigid or board-like abdomen"),
    "cyanosis": _l("blue lips or face"),
    "palpitations": _l("palpitations: possible immune myocarditis or arrhythmia"),
    "neuromuscular": _l(
        "drooping eyelids, double vision or limb weakness: possible myasthenia / myocarditis"
    ),
    "hyperglycaemia_with_vomiting_or_drowsy": _l(
        "great thirst and much urine with vomiting or drowsiness: possible ketoacidosis"
    ),
    "temperature_low_on_chemotherapy": _l(
        "temperature {temperature} C < {threshold} during chemotherapy ({phase}): possible sepsis"
    ),
    "checkin_very_severe_breathlessness": _l("check-in: shortness of breath 'very severe'"),
    "checkin_constant_vomiting": _l("check-in: vomiting 'almost constantly'"),
    "checkin_constant_diarrhoea": _l("check-in: diarrhoea 'almost constantly'"),
    "irinotecan_diarrhoea_with_vomiting": _l("diarrhoea with vomiting after irinotecan"),
    "irinotecan_first_loose_stool": _l(
        "loose stools {days_since_infusion} days after irinotecan: start the loperamide plan,"
        " nurse calls today"
    ),
    "temperature_borderline_on_chemotherapy": _l(
        "temperature {temperature} C (37.5-37.9) during chemotherapy ({phase}): recheck and call"
        " today"
    ),
    "hyperglycaemia": _l(
        "great thirst or passing much urine: check blood glucose (immune diabetes)"
    ),
    "skin_blistering": _l("blisters or peeling skin"),
    "checkin_severe_answer": _l("check-in: {code} severe or very severe"),
    "checkin_frequent_answer": _l("check-in: {code} frequently or almost constantly"),
    "diarrhea_4_to_6": _l("diarrhoea grade {grade}: 4-6 stools a day over baseline or moderate"),
    "dysphagia_changed": _l("swallowing changed: {level} (grade {grade})"),
    "vomiting": _l("vomiting ('{evidence}')"),
    "cough_new": _l("new cough ('{evidence}')"),
    "dyspnea": _l("breathlessness, {level} ('{evidence}')"),
    "rash_widespread": _l("widespread {code} ('{evidence}')"),
    "top_of_scale": _l("{code} at the top of its scale (grade {grade})"),
    "worse_by_2": _l("{code} worse by >= 2 points (grade {previous} -> {grade})"),
    "ungraded_symptom": _l("{code} reported without a grade ('{evidence}'): needs assessment"),
    "temperature_low": _l("temperature {temperature} C < {threshold}"),
    "unwell": _l("patient feels unwell"),
    "hospital": _l("patient mentions hospital or emergency department"),
    "truncated": _l("message too long to read in full: a person must read it"),
    "parse_error": _l("message could not be interpreted: a person must read it"),
    "mild_symptom": _l("{code} grade {grade}"),
    "symptoms_denied": _l("patient reports no {code}"),
    "temperature_recorded": _l("temperature {temperature} C recorded"),
    "routine_reply": _l("{intent}"),
}

# Reasons written by the services rather than by a rule: (pattern, label with the same names).
OTHER_REASONS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"safety_net: clinical words not understood \((?P<words>.*)\): a person must read it"),
     _l("Clinical words the system could not read (%(words)s): a person must read it")),
    (re.compile(r"safety_net: message not understood and not clearly non-clinical"),
     _l("Message not understood and not clearly non-clinical: a person must read it")),
    (re.compile(r"reschedule requested: no open event found"),
     _l("Reschedule requested: no open event found")),
    (re.compile(r"reschedule requested: (?P<events>.+)"),
     _l("Reschedule requested: %(events)s")),
    (re.compile(r"opt-out keyword by SMS from this contact"),
     _l("Opt-out keyword by SMS from this contact: no SMS to this number until it opts back in")),
    (re.compile(r"consent \((?P<method>[a-z_]+)\)"), _l("Consent recorded")),
    (re.compile(r"contact added"), _l("Contact added")),
    (re.compile(r"check-in unanswered by the patient"),
     _l("Check-in unanswered by the patient: offered to a caregiver")),
    (re.compile(r"contact changed"), _l("Contact changed")),
    (re.compile(r"consent recorded before contacts existed, confirmed"),
     _l("Consent recorded before contacts existed: confirmed")),
    (re.compile(r"opt-in keyword by SMS from this contact"),
     _l("Opt-in keyword by SMS from this contact")),
    (re.compile(r"opt-out keyword: .*"),
     _l("Opt-out keyword: no SMS until the patient opts back in (check-ins go to calls)")),
    (re.compile(r"check-in partly answered \((?P<num>\d+) answers\): call the patient"),
     _l("Check-in partly answered (%(num)s answers): call the patient")),
    (re.compile(r"check-in not answered: call the patient"),
     _l("Check-in not answered: call the patient")),
    (re.compile(r"(?:demo: )?check-in not answered after (?P<num>\d+) days"),
     _l("Check-in not answered after %(num)s days")),
    (re.compile(r"no SMS possible: (?P<why>.+)"), _l("No SMS possible: call the patient")),
    (re.compile(r"the check-in expired unanswered"), _l("The check-in expired unanswered")),
    (re.compile(r"a newer check-in was sent"), _l("A newer check-in was sent")),
    (re.compile(r"enrolment"), _l("Enrolment")),
    (re.compile(r"nobody on call to page"), _l("Nobody on call to page")),
    (re.compile(r"call task resolved"), _l("Call task resolved")),
    (re.compile(r"confirmed by the patient by SMS"), _l("Confirmed by the patient by SMS")),
    (re.compile(r"opt-in keyword by SMS"), _l("Opt-in keyword by SMS")),
    (re.compile(r"opted_out"), _l("The patient opted out of SMS")),
    (re.compile(r"the patient asked by SMS to change the date"),
     _l("The patient asked by SMS to change the date")),
    (re.compile(r"SMS provider: (?P<detail>.*)"), _l("SMS provider: %(detail)s")),
    (re.compile(r"(?P<level>red|amber|green) alert not acknowledged after (?P<num>\d+) min"),
     _l("%(level)s alert not acknowledged after %(num)s min")),
    (re.compile(r"demo: past visits marked done"), _l("Demo data: past visits marked done")),
    (re.compile(r"demo: salvage chemoradiation"), _l("Demo data: salvage chemoradiation")),
    (re.compile(r"demo: oesophageal wall thickening on CT"),
     _l("Demo data: oesophageal wall thickening on CT")),
    (re.compile(r"opt-out keyword by SMS"), _l("Opt-out keyword by SMS")),
    (re.compile(r"replan_failed"), _l("Re-planning the reminders failed: check the calendar")),
    (re.compile(r"symptom check-in answered"), _l("Symptom check-in answered")),
    (re.compile(r"the patient answered the check-in"), _l("The patient answered the check-in")),
)  # fmt: skip


@dataclass(frozen=True)
class Reason:
    """A stored reason read back: its rule id (or '') and its parameters."""

    rule_id: str
    params: dict[str, str]
    stored: str


@lru_cache(maxsize=1)
def _templates() -> dict[str, tuple[str, re.Pattern[str]]]:
    """rule id -> (English template, regex reading its placeholders back)."""
    result = {}
    for rule in load_triage_rules().rules:
        parts = re.split(r"\{(\w+)\}", rule.reason)
        pattern = "".join(
            re.escape(part) if index % 2 == 0 else f"(?P<{part}>.*?)"
            for index, part in enumerate(parts)
        )
        result[rule.id] = (rule.reason, re.compile(pattern + r"\Z", re.DOTALL))
    return result


def parse_reason(stored: str) -> Reason:
    """Read a stored reason ("rule_id: text") back into its rule id and parameters."""
    rule_id, _, text = str(stored).partition(": ")
    template = _templates().get(rule_id)
    if template is None:
        return Reason("", {}, str(stored))
    match = template[1].match(text)
    return Reason(rule_id, match.groupdict() if match else {}, str(stored))


def reason_label(stored: str) -> str:
    """The reason in the reader's language (the stored English when nothing matches)."""
    reason = parse_reason(stored)
    if reason.rule_id in RULE_TEXTS:
        values = {name: _value(name, value) for name, value in reason.params.items()}
        return str(RULE_TEXTS[reason.rule_id]).format_map(_Missing(values))
    for pattern, label in OTHER_REASONS:
        match = pattern.fullmatch(str(stored).strip())
        if match:
            values = {k: _value(k, v) for k, v in match.groupdict().items()}
            return str(label) % values if values else str(label)
    return str(stored)


class _Missing(dict):
    """Template values; a placeholder the text did not give reads as '?'."""

    def __missing__(self, key: str) -> str:
        return "?"


def _value(name: str, value: str) -> str:
    """A parameter for people: codes translated, the patient's words as they wrote them."""
    if name == "code":
        return labels.symptom_label(value)
    if name == "level":
        return (
            labels.level_label(value)
            if value in labels.LEVEL_LABELS
            else labels.symptom_level_label(value)
        )
    if name == "phase":
        return labels.phase_label(value)
    if name == "intent":
        return labels.intent_label(value)
    if name == "evidence":
        return terms.evidence_label(value)
    if name == "events":
        return "、".join(labels.event_key_label(key.strip()) for key in value.split(","))
    return value


def reason_labels(stored: list[str] | tuple[str, ...] | None) -> list[str]:
    """Every stored reason in the reader's language."""
    return [reason_label(r) for r in stored or ()]
