"""CTCAE / PRO-CTCAE terms and check-in answer codes in the reader's language."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from app.services.conversations.checkins.sessions import questionnaire
from app.services.shared.protocols import current_protocol
from app.web import labels

TERMS_FILE = Path(__file__).with_name("terms_zh.yaml")


@lru_cache(maxsize=1)
def _terms() -> dict[str, dict[str, str]]:
    """The Chinese names, by vocabulary (ctcae, pro_ctcae)."""
    with TERMS_FILE.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return {name: dict(data.get(name) or {}) for name in ("ctcae", "pro_ctcae")}


def ctcae_label(term: str | None) -> str:
    """A CTCAE v5 term in the reader's language (as the protocol spells it in English)."""
    if not term:
        return ""
    return _terms()["ctcae"].get(term, term) if labels.is_zh() else term


def pro_ctcae_label(term: str | None) -> str:
    """A PRO-CTCAE term in the reader's language (the validated Chinese wording)."""
    if not term:
        return ""
    return _terms()["pro_ctcae"].get(term, term) if labels.is_zh() else term


def drug_text(text: str) -> str:
    """A drug with its dose ('sintilimab 200 mg') with the drug's name in the reader's language."""
    if not labels.is_zh():
        return text
    for drug in current_protocol().drugs.values():
        if text.startswith(f"{drug.name_en} "):
            return f"{drug.name_zh}{text.removeprefix(drug.name_en)}"
    return text


def drugs_text(drugs: list[str] | None) -> str:
    """A list of drugs with their doses, joined for the reader's language."""
    return ("、" if labels.is_zh() else ", ").join(drug_text(d) for d in drugs or ())


def choices_text(choices: dict[str, str] | None) -> str:
    """A patient's treatment choices ({'pd1': 'sintilimab'}) as drug names."""
    drugs = current_protocol().drugs
    names = []
    for value in (choices or {}).values():
        drug = drugs.get(str(value))
        names.append((drug.name_zh if labels.is_zh() else drug.name_en) if drug else str(value))
    return ("、" if labels.is_zh() else ", ").join(names)


def answer_code_label(code: str) -> str:
    """A check-in question code (S, NS ...) as the short name of what it asks."""
    lang = "zh" if labels.is_zh() else "en"
    for item in questionnaire().items:
        for question in item.questions:
            if question.code == code:
                return question.title(lang) or item.title(lang)
    return code


def evidence_label(evidence: str) -> str:
    """What a reason quotes: check-in codes ('check-in S=4') in words, a patient's words as is."""
    text = str(evidence)
    if not text.startswith("check-in "):
        return text
    parts = []
    for pair in text.removeprefix("check-in ").split():
        code, _, value = pair.partition("=")
        parts.append(f"{answer_code_label(code)} {value}".strip())
    return "、".join(parts) if labels.is_zh() else ", ".join(parts)
