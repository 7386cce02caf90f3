"""Approved SMS templates as data (app/protocols/sms_templates.yaml), their rules, their export.

Mainland providers send only an approved template id plus parameters. ``TemplateCatalogue``
loads the study team's file, finds which template a rendered text is (``resolve``), checks every
template against each provider's rules (``check``) and writes the approval sheet (``export_csv``).
Plain Python: no Flask here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "protocols" / "sms_templates.yaml"
PROVIDERS = ("tencent", "aliyun")
VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
LINK = re.compile(r"(https?://|www\.)", re.IGNORECASE)
SIGNATURE = re.compile(r"^【[^【】]{1,20}】|【[^【】]{1,20}】$")
CONSTANT = re.compile(r"\[\[([A-Z_]+)\]\]")
LOCALES = ("zh", "en")
# Where patients reach the app when PUBLIC_BASE_URL is unset (development; services' links agree).
DEFAULT_CONSTANTS = {"PUBLIC_BASE_URL": "http://127.0.0.1:5000"}

# Every kind of SMS Cadence sends, each a template in every locale (``check`` fails without).
# Patients: reminders and schedule changes (services/messaging/reminders.py), answers to replies
# (services/shared/reply_texts.py, inbound/senders.py), check-ins (checkins/texts.py), nurses'
# ready phrases and own words (conversations/conversation.py). Staff: pages (reply_texts.py).
REQUIRED_KINDS: tuple[str, ...] = (
    "reminder",
    "moved",
    "confirmed",
    "received",
    "reschedule",
    "red_reply",
    "amber_reply",
    "amber_reply_later",
    "amber_reply_no_cover",
    "green_reply",
    "opt_out",
    "opt_in",
    "help",
    "unknown_reply",
    "failure_reply",
    "unknown_sender",
    "unknown_sender_emergency",
    "ask_back",
    "red_check",
    "nothing_open",
    "which_patient",
    "checkin_start",
    "checkin_question",
    "checkin_reminder",
    "checkin_done",
    "nurse_received",
    "nurse_will_call",
    "nurse_come_in",
    "nurse_keep_taking",
    "nurse_checkin",
    "nurse_emergency",
    "message",
    "red_page",
    "red_escalation_page",
    "amber_reminder_page",
)


@dataclass(frozen=True)
class ProviderRules:
    """What a provider accepts in a template (lengths in characters, signature included)."""

    name: str
    max_length: int = 500
    max_variable_length: int | None = None
    signature: str = "【江苏省肿瘤医院】"


@dataclass(frozen=True)
class Template:
    """One message kind in one locale: fixed text with {variables} and provider ids."""

    kind: str
    locale: str
    text: str
    type: str
    purpose: str
    variables: Mapping[str, Mapping[str, Any]]
    ids: Mapping[str, str]

    @property
    def names(self) -> list[str]:
        """The variables in the order they appear (the provider's {1}, {2} ... order)."""
        return VARIABLE.findall(self.text)

    def numbered(self) -> str:
        """The text as submitted to Tencent ({1}, {2} ...)."""
        counter = iter(range(1, 100))
        return VARIABLE.sub(lambda _m: "{" + str(next(counter)) + "}", self.text)

    def named(self) -> str:
        """The text as submitted to Alibaba (${name})."""
        return VARIABLE.sub(lambda m: f"${{{m.group(1)}}}", self.text)

    def example(self) -> str:
        """The text filled with each variable's example value."""
        values = {}
        for name in self.names:
            example = self.variables[name].get("example", name)
            values[name] = str(
                example.get(self.locale, name) if isinstance(example, dict) else example
            )
        return self.render(values)

    def render(self, values: Mapping[str, str]) -> str:
        """The text with ``values`` put in (KeyError for a missing variable)."""
        return VARIABLE.sub(lambda m: values[m.group(1)], self.text)

    def pattern(self) -> re.Pattern[str]:
        """A regular expression matching this template's rendered texts."""
        pieces = VARIABLE.split(self.text)
        regex = "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>.+?)"
            for index, piece in enumerate(pieces)
        )
        return re.compile(rf"\A{regex}\Z", re.DOTALL)

    def longest(self) -> str:
        """The text with every variable at its longest plausible value."""
        return self.render({n: "字" * int(self.variables[n].get("max", 12)) for n in self.names})


@dataclass(frozen=True)
class Resolved:
    """A rendered text identified as a template: the provider's id and the values in order."""

    template: Template
    template_id: str
    values: list[str]
    named: dict[str, str] = field(default_factory=dict)


class TemplateError(ValueError):
    """The template file is malformed, or a text matches no approved template."""


class TemplateCatalogue:
    """Every approved template, looked up by rendered text."""

    def __init__(self, templates: Iterable[Template], *, fallback: str | None = None) -> None:
        self.templates = list(templates)
        self.fallback = fallback
        # The most fixed text first, so a specific template wins over a general one.
        self._ordered = sorted(
            self.templates, key=lambda t: len(VARIABLE.sub("", t.text)), reverse=True
        )
        self._patterns = {id(t): t.pattern() for t in self.templates}

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        *,
        fallback: str | None = None,
        constants: Mapping[str, str] | None = None,
    ) -> TemplateCatalogue:
        """Read the YAML file (default app/protocols/sms_templates.yaml) or TemplateError.

        ``constants`` fill the fixed ``[[NAME]]`` parts of the texts, e.g. PUBLIC_BASE_URL: a link
        is fixed template text for the providers, so the deployment's address is written in.
        """
        source = Path(path) if path else DEFAULT_PATH
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"cannot read SMS templates {source}: {exc}") from exc
        return cls(_parse(data, {**DEFAULT_CONSTANTS, **(constants or {})}), fallback=fallback)

    def resolve(self, body: str, provider: str) -> Resolved:
        """The template ``body`` is (signature stripped) with its values, or TemplateError."""
        text = SIGNATURE.sub("", body.strip()).strip()
        for template in self._ordered:
            match = self._patterns[id(template)].match(text)
            if match is not None and provider in template.ids:
                named = {n: match.group(n) for n in template.names}
                values = [named[n] for n in template.names]
                return Resolved(template, template.ids[provider], values, named)
        wrapped = self._wrap(text, provider)
        if wrapped is not None:
            return wrapped
        raise TemplateError(f"no approved {provider} template matches the text {text[:40]!r}")

    def _wrap(self, text: str, provider: str) -> Resolved | None:
        """The fallback kind's template carrying ``text`` as its one variable, if configured."""
        if not self.fallback:
            return None
        locale = "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"
        for template in self.templates:
            usable = len(template.names) == 1 and provider in template.ids
            if template.kind == self.fallback and template.locale == locale and usable:
                name = template.names[0]
                return Resolved(template, template.ids[provider], [text], {name: text})
        return None

    def missing(self, kinds: Iterable[str] = REQUIRED_KINDS) -> list[str]:
        """Each kind/locale Cadence sends that has no template ("checkin_done/en")."""
        present = {(t.kind, t.locale) for t in self.templates}
        return [
            f"{kind}/{locale}"
            for kind in kinds
            for locale in LOCALES
            if (kind, locale) not in present
        ]

    def check(self, rules: ProviderRules, kinds: Iterable[str] = REQUIRED_KINDS) -> list[str]:
        """Every rule a template breaks for ``rules``'s provider, and every kind without one."""
        problems = [
            f"{missing} ({rules.name}): no template for a message Cadence sends"
            for missing in self.missing(kinds)
        ]
        for template in self.templates:
            problems.extend(
                f"{template.kind}/{template.locale} ({rules.name}): {problem}"
                for problem in _problems(template, rules)
            )
        return problems

    def export_csv(self, provider: str) -> str:
        """The approval sheet: kind, locale, template text, type, purpose, example, current id."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["kind", "locale", "template", "type", "purpose", "example", "id"])
        for t in self.templates:
            text = t.numbered() if provider == "tencent" else t.named()
            writer.writerow(
                [t.kind, t.locale, text, t.type, t.purpose, t.example(), t.ids.get(provider, "")]
            )
        return out.getvalue()


def _problems(template: Template, rules: ProviderRules) -> list[str]:
    """The rule violations of one template."""
    problems: list[str] = []
    text, names = template.text, template.names
    if rules.name not in template.ids:
        problems.append("no approved template id")
    if "【" in text or "】" in text:
        problems.append("contains 【 or 】 (reserved for the signature)")
    if names and not VARIABLE.sub("", text).strip():
        problems.append("the template is only variables")
    if re.search(r"\}\{", text):
        problems.append("two variables are adjacent")
    if len(set(names)) != len(names):
        problems.append("a variable appears twice")
    for name in names:
        spec = template.variables.get(name)
        if spec is None:
            problems.append(f"variable {name!r} is not declared")
            continue
        if LINK.search(str(spec.get("example", ""))):
            problems.append(f"variable {name!r} holds a link (links must be fixed text)")
        limit = rules.max_variable_length
        if limit is not None and int(spec.get("max", 0)) > limit:
            problems.append(
                f"variable {name!r} may be {spec.get('max')} characters (limit {limit})"
            )
    if all(n in template.variables for n in names):
        length = len(rules.signature) + len(template.longest())
        if length > rules.max_length:
            problems.append(f"{length} characters with the signature (limit {rules.max_length})")
    return problems


def _constant(text: str, constants: Mapping[str, str], kind: str) -> str:
    """``text`` with its [[NAME]] constants filled in, or TemplateError naming a missing one."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in constants:
            raise TemplateError(f"template {kind!r} uses [[{name}]], which is not configured")
        return str(constants[name]).rstrip("/")

    return CONSTANT.sub(value, text)


def _parse(data: Mapping[str, Any], constants: Mapping[str, str]) -> list[Template]:
    """Templates from the YAML mapping, or TemplateError naming the bad entry."""
    entries = data.get("templates")
    if not isinstance(entries, dict) or not entries:
        raise TemplateError("the SMS template file needs a 'templates' mapping")
    templates: list[Template] = []
    for kind, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), dict):
            raise TemplateError(f"template {kind!r} needs a 'text' mapping of locale -> text")
        ids = entry.get("ids") or {}
        for locale, text in entry["text"].items():
            templates.append(
                Template(
                    kind=str(kind),
                    locale=str(locale),
                    text=_constant(str(text), constants, str(kind)),
                    type=str(entry.get("type", "notification")),
                    purpose=str(entry.get("purpose", "")),
                    variables=entry.get("variables") or {},
                    ids={p: str(v[locale]) for p, v in ids.items() if locale in (v or {})},
                )
            )
    return templates
