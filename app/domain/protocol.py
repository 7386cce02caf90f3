"""Load and validate a protocol definition (YAML data file) into typed, immutable objects."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema
import yaml
from dateutil.relativedelta import relativedelta
from jsonschema.exceptions import ValidationError, best_match

from app.domain.working_days import working_days_for

PROTOCOLS_DIR = Path(__file__).resolve().parent.parent / "protocols"
SCHEMA_PATH = PROTOCOLS_DIR / "schema.json"
DEFAULT_PROTOCOL_FILE = "nct07016737.yaml"

PHASE_NAMES = ("induction", "maintenance", "salvage", "follow_up")
STARTS_STUDY = "study_start"
STARTS_AFTER_PHASE = "after_phase"
STARTS_ON_DEMAND = "on_demand"
STARTS_AFTER_TREATMENT = "after_treatment"
ONGOING_RULES = ("pause", "continue", "stop")

_PATTERN_TEXT = {
    "^[a-z][a-z0-9_]*$": "a lower-case code (letters, digits and _, starting with a letter)",
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": "a code of letters, digits, '.', '_' or '-'",
}
_TYPE_TEXT = {
    "integer": "an integer",
    "number": "a number",
    "string": "a text",
    "boolean": "true or false",
    "object": "a mapping (name: value)",
    "array": "a list",
    "null": "nothing",
}


class ProtocolError(ValueError):
    """A protocol file that cannot be used; names the file, the field and what was expected."""

    def __init__(
        self,
        file: str | Path,
        field: str,
        expected: str,
        got: str | None = None,
        *,
        more: int = 0,
        line: int | None = None,
        message: str | None = None,
    ) -> None:
        self.file = str(file)
        self.field = field
        self.expected = expected
        self.got = got
        self.more = more
        self.line = line
        if message is None:
            where = f"{field} (line {line})" if line and not field.startswith("line ") else field
            message = f"{self.file}: {where}: expected {expected}"
            if got is not None:
                message += f", got {got}"
            if more:
                message += f" (and {more} more problem{'s' if more > 1 else ''} in the file)"
        super().__init__(message)


class ChoiceError(ProtocolError):
    """A patient's treatment choices do not match the protocol (missing or unknown value)."""


# --------------------------------------------------------------------------- typed objects


@dataclass(frozen=True)
class Window:
    """How many days an event may be done before or after its planned date."""

    before: int
    after: int


@dataclass(frozen=True)
class Fasting:
    """How long before a test the patient must not eat, and not drink (0: allowed)."""

    food_hours: int
    water_hours: int = 0

    @staticmethod
    def strictest(items: Iterable[Fasting | None]) -> Fasting | None:
        """The one rule that satisfies all of `items` (longest food and water fasts), or None."""
        real = [f for f in items if f is not None and (f.food_hours or f.water_hours)]
        if not real:
            return None
        return Fasting(max(f.food_hours for f in real), max(f.water_hours for f in real))

    def to_json(self) -> dict[str, int]:
        """JSON form for event details."""
        return {"food_hours": self.food_hours, "water_hours": self.water_hours}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Fasting | None:
        """Rebuild from `to_json()` output (None stays None)."""
        if not data:
            return None
        return cls(int(data.get("food_hours", 0)), int(data.get("water_hours", 0)))


@dataclass(frozen=True)
class Guidance:
    """A short instruction shown with an event (check-in advice, infusion note)."""

    code: str
    text_en: str
    text_zh: str

    def to_json(self) -> dict[str, str]:
        """JSON form for event details."""
        return {"code": self.code, "text_en": self.text_en, "text_zh": self.text_zh}


@dataclass(frozen=True)
class Premedication:
    """Supportive medication the patient takes around an infusion of one drug."""

    code: str
    offset_days: int
    duration_days: int
    window: Window
    drug: str
    title_en: str
    title_zh: str
    note_en: str
    note_zh: str


@dataclass(frozen=True)
class Drug:
    """A drug of the protocol with what goes with it (premedication, check-in advice, notes)."""

    code: str
    name_en: str
    name_zh: str
    premedication: tuple[Premedication, ...] = ()
    checkin_guidance: tuple[Guidance, ...] = ()
    infusion_notes: tuple[Guidance, ...] = ()


@dataclass(frozen=True)
class DrugDose:
    """A drug with its dose as written in the protocol."""

    drug: Drug
    dose: str
    schedule: str = ""

    @property
    def text_en(self) -> str:
        """E.g. 'sintilimab 200 mg'."""
        return f"{self.drug.name_en} {self.dose}"

    @property
    def text_zh(self) -> str:
        """E.g. '信迪利单抗 200 mg'."""
        return f"{self.drug.name_zh} {self.dose}"

    def to_json(self) -> dict[str, str]:
        """JSON form for event details."""
        return {
            "code": self.drug.code,
            "name_en": self.drug.name_en,
            "name_zh": self.drug.name_zh,
            "dose": self.dose,
            "schedule": self.schedule,
        }


@dataclass(frozen=True)
class Option:
    """One value of a choice, e.g. docetaxel 75 mg/m2."""

    code: str
    label_en: str
    label_zh: str
    dose_text: str
    drugs: tuple[DrugDose, ...]


@dataclass(frozen=True)
class Choice:
    """A treatment choice made at enrolment (e.g. which PD-1 inhibitor)."""

    code: str
    label_en: str
    label_zh: str
    options: dict[str, Option]


@dataclass(frozen=True)
class DrugRef:
    """A drug given in a cycle: either the option of a choice or a fixed drug and dose."""

    choice: str | None = None
    fixed: DrugDose | None = None

    def resolve(self, protocol: Protocol, choices: Mapping[str, str]) -> tuple[DrugDose, ...]:
        """The drugs and doses for a patient's choices."""
        if self.fixed is not None:
            return (self.fixed,)
        assert self.choice is not None
        return protocol.choices[self.choice].options[choices[self.choice]].drugs


@dataclass(frozen=True)
class EventRule:
    """Where an event sits relative to its anchor, its window, and whether it needs a workday."""

    offset_days: int
    window: Window
    working_day: bool
    placement: str = "nearest"


@dataclass(frozen=True)
class LabPanel:
    """A group of blood tests, done every n cycles from a first cycle."""

    code: str
    label_en: str
    label_zh: str
    every_n_cycles: int = 1
    first_cycle: int = 1
    fasting: Fasting | None = None

    def due(self, cycle: int) -> bool:
        """True when this panel is part of the labs before `cycle`."""
        return cycle >= self.first_cycle and (cycle - self.first_cycle) % self.every_n_cycles == 0


@dataclass(frozen=True)
class LabsRule:
    """Pre-infusion labs: timing, window and panels."""

    rule: EventRule
    panels: tuple[LabPanel, ...]


@dataclass(frozen=True)
class CheckinRule:
    """Symptom check-in days after each infusion."""

    days_after_infusion: tuple[int, ...]
    window: Window
    working_day: bool


@dataclass(frozen=True)
class Duration:
    """A length of time in calendar units (years, months, weeks, days)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0

    def after(self, start: date) -> date:
        """The date this duration after `start`."""
        return start + relativedelta(
            years=self.years, months=self.months, weeks=self.weeks, days=self.days
        )


@dataclass(frozen=True)
class CycleBlock:
    """Repeated treatment cycles: how many, how often, which drugs and which events."""

    count: int | None
    duration: Duration | None
    interval_days: int
    min_interval_days: int
    numbering: str
    first_offset_days: int
    drugs: tuple[DrugRef, ...]
    infusion: EventRule
    labs: LabsRule | None
    checkins: CheckinRule | None
    on_radiotherapy: bool = False

    def cycle_count(self, first: date) -> int:
        """Number of cycles when the first one is on `first` (count, or as many as fit)."""
        if self.count is not None:
            return self.count
        assert self.duration is not None
        end = self.duration.after(first)
        return max(1, -(-(end - first).days // self.interval_days))


@dataclass(frozen=True)
class RadiotherapyBlock:
    """A radiotherapy course: one fraction a working day, and its check-ins."""

    label_en: str
    label_zh: str
    dose_text: str
    fractions_min: int
    fractions_max: int
    fractions_default: int
    checkin_weekly_days: tuple[int, ...]
    checkin_days_after_end: tuple[int, ...]
    checkin_window: Window
    checkin_working_day: bool
    max_overall_days: int | None = None
    response: ResponseAssessment | None = None


@dataclass(frozen=True)
class ResponseAssessment:
    """The tumour assessment after radiotherapy; routine imaging waits until it is done."""

    weeks_after_end: int
    window: Window
    assessments: tuple[str, ...]


@dataclass(frozen=True)
class ContactRule:
    """Follow-up contacts after treatment: fixed days after the last dose, or periodic."""

    code: str
    label_en: str
    label_zh: str
    days_after_last_dose: tuple[int, ...]
    every_days: int | None
    until_years_after_recurrence: int | None
    final_contact_at_end: bool
    window: Window
    working_day: bool
    until_study_completion: bool = False


@dataclass(frozen=True)
class Phase:
    """A protocol phase and the blocks of events it generates."""

    code: str
    label_en: str
    label_zh: str
    description_en: str
    description_zh: str
    starts: str
    after_phase: str | None
    cycles: CycleBlock | None
    radiotherapy: RadiotherapyBlock | None
    contacts: tuple[ContactRule, ...]
    ongoing_treatment: str
    resume_days_after_end: int


@dataclass(frozen=True)
class AssessmentSegment:
    """Part of an assessment schedule: from week a, every n weeks, up to week b."""

    from_week: int
    every_weeks: int
    to_week: int | None


@dataclass(frozen=True)
class Assessment:
    """A tumour assessment (imaging, endoscopy) on a schedule counted from the study start."""

    code: str
    kind: str
    label_en: str
    label_zh: str
    segments: tuple[AssessmentSegment, ...]
    until: str
    on_demand: bool
    note_en: str
    note_zh: str
    window: Window
    working_day: bool
    fasting: Fasting | None = None
    contrast: str | None = None
    contrast_after_radiotherapy: str | None = None

    def weeks(self, last_day: int) -> list[int]:
        """Study weeks of this assessment, up to study day `last_day`, without repeats."""
        found: list[int] = []
        for seg in self.segments:
            week = seg.from_week
            while week * 7 <= last_day and (seg.to_week is None or week <= seg.to_week):
                if week not in found:
                    found.append(week)
                week += seg.every_weeks
        return sorted(found)


@dataclass(frozen=True)
class Settings:
    """Cross-cutting rules of the calendar engine (see docs/protocol-assumptions.md)."""

    non_working_day_tie_break: str = "earlier"
    assessments_follow_treatment_delays: bool = False
    progression_review_days: int = 7
    progression_review_window_days: int = 7
    first_infusion_not_before_start: bool = True
    closure_min_days: int = 4
    closure_risk_days: tuple[int, int] = (1, 10)


@dataclass(frozen=True)
class AssessmentDayRules:
    """How the tests of one assessment visit share days (protocol `assessment_days`).

    `order`: groups of assessment codes; a later group goes on a later working day than every
    earlier group (e.g. CT and endoscopy before a barium study). `days_before_infusion`: the
    scans go on working days this many days before the infusion they inform at most, never on
    the infusion day itself when `not_on_infusion_day`.
    """

    order: tuple[tuple[str, ...], ...] = ()
    days_before_infusion: int = 0
    not_on_infusion_day: bool = False

    def group_of(self, code: str) -> int:
        """The order group of an assessment code (codes not listed go with the first group)."""
        for i, group in enumerate(self.order):
            if code in group:
                return i
        return 0


@dataclass(frozen=True)
class Protocol:
    """A validated protocol: everything the calendar engine needs, plus the raw file."""

    code: str
    title: str
    title_zh: str
    path: Path
    default_timezone: str
    working_days_country: str
    choices: dict[str, Choice]
    drugs: dict[str, Drug]
    phases: dict[str, Phase]
    assessments: tuple[Assessment, ...]
    settings: Settings
    raw: dict[str, Any] = field(repr=False, compare=False)
    study_completion: date | None = None
    assessment_days: AssessmentDayRules = field(default_factory=AssessmentDayRules)

    def assessment(self, code: str) -> Assessment | None:
        """The assessment with this code, if any."""
        return next((a for a in self.assessments if a.code == code), None)

    def validate_choices(self, choices: Mapping[str, str] | None) -> dict[str, str]:
        """Normalise a patient's choices; raise ChoiceError naming the allowed values."""
        given = {
            str(k).strip().lower(): str(v).strip().lower() for k, v in dict(choices or {}).items()
        }
        for code in given:
            if code not in self.choices:
                allowed = ", ".join(self.choices) or "none"
                raise ChoiceError(
                    self.path,
                    f"choices.{code}",
                    f"one of this protocol's choices: {allowed}",
                    repr(code),
                    message=f"unknown choice {code!r}: this protocol's choices are {allowed}",
                )
        result: dict[str, str] = {}
        for code, choice in self.choices.items():
            allowed = ", ".join(choice.options)
            value = given.get(code, "")
            if not value:
                raise ChoiceError(
                    self.path,
                    f"choices.{code}",
                    f"one of {allowed}",
                    message=f"missing choice {code!r} ({choice.label_en}): choose one of {allowed}",
                )
            if value not in choice.options:
                raise ChoiceError(
                    self.path,
                    f"choices.{code}",
                    f"one of {allowed}",
                    repr(value),
                    message=f"unknown {code} {value!r} ({choice.label_en}): "
                    f"expected one of {allowed}",
                )
            result[code] = value
        return result

    def chain(self) -> list[Phase]:
        """Phases with cycles that run one after the other from the study start."""
        order = [p for p in self.phases.values() if p.starts == STARTS_STUDY]
        while True:
            nxt = [
                p
                for p in self.phases.values()
                if p.starts == STARTS_AFTER_PHASE and p.after_phase == order[-1].code
            ]
            if not nxt:
                return order
            order.append(nxt[0])

    def on_demand_phase(self) -> Phase | None:
        """The phase started by a decision (salvage), if the protocol has one."""
        return next((p for p in self.phases.values() if p.starts == STARTS_ON_DEMAND), None)

    def follow_up_phase(self) -> Phase | None:
        """The phase of contacts after treatment, if the protocol has one."""
        return next((p for p in self.phases.values() if p.starts == STARTS_AFTER_TREATMENT), None)

    def option(self, choice: str, value: str) -> Option:
        """The option `value` of choice `choice`."""
        return self.choices[choice].options[value]


# --------------------------------------------------------------------------- loading


def default_protocol_path() -> Path:
    """Path of the trial's protocol file (app/protocols/nct07016737.yaml)."""
    return PROTOCOLS_DIR / DEFAULT_PROTOCOL_FILE


def load_protocol(path: str | Path) -> Protocol:
    """Read, schema-check and semantically check a protocol file; raise ProtocolError if bad."""
    path = Path(path)
    text, data = _read_yaml(path)
    _check_schema(data, path, text)
    return _Builder(data, path, text).build()


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema protocol files are checked against."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _read_yaml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(path, "(file)", "a readable protocol file", exc.strerror) from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError(path, "(file)", "UTF-8 text", "undecodable bytes") from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        problem = exc.problem or str(exc)
        if exc.context:
            problem += f" ({exc.context})"
        raise ProtocolError(
            path, where, "valid YAML", problem, line=mark.line + 1 if mark else None
        ) from exc
    except yaml.YAMLError as exc:
        raise ProtocolError(path, "(document)", "valid YAML", str(exc)) from exc
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _show(data)
        raise ProtocolError(
            path, "(document)", "a mapping of sections (protocol, phases, ...)", got
        )
    return text, data


def _check_schema(data: dict[str, Any], path: Path, text: str) -> None:
    validator = jsonschema.Draft202012Validator(protocol_schema())
    errors = list(validator.iter_errors(data))
    if not errors:
        return
    error = _most_helpful(errors)
    field_path, expected, got = _explain(error)
    line = _line_of(text, field_path)
    raise ProtocolError(path, field_path, expected, got, more=len(errors) - 1, line=line)


def _most_helpful(errors: list[ValidationError]) -> ValidationError:
    """The error to show first: a misspelt field explains a 'required' error beside it."""
    best = best_match(errors)
    if best.validator == "required":
        for error in errors:
            if error.validator == "additionalProperties" and error.path == best.path:
                return error
    return best


def _line_of(text: str, field_path: str) -> int | None:
    """The 1-based line of a dotted field path in the YAML text, when it can be found."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in _split_field(field_path):
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _split_field(field_path: str) -> list[str | int]:
    """'a.b[2].c' -> ['a', 'b', 2, 'c']."""
    parts: list[str | int] = []
    for piece in field_path.split("."):
        name, *indexes = piece.split("[")
        if name:
            parts.append(name)
        parts.extend(int(i.rstrip("]")) for i in indexes if i.rstrip("]").isdigit())
    return parts


def _explain(error: ValidationError) -> tuple[str, str, str | None]:
    """Field path, what was expected and what was found, for one schema error."""
    where = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator = error.validator
    if "propertyNames" in error.absolute_schema_path:
        return _field([*where, error.instance]), _describe(schema), _show(error.instance)
    if validator == "required":
        missing = str(error.message).split("'")[1]
        return _field([*where, missing]), "this required field", "nothing"
    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        extra = sorted(
            k for k in error.instance if k not in schema.get("properties", {}) and k[:2] != "x-"
        )
        name = extra[0] if extra else "?"
        expected = "one of the known fields: " + ", ".join(known) if known else "no extra field"
        close = difflib.get_close_matches(str(name), known, n=1)
        if close:
            expected += f" (did you mean {close[0]!r}?)"
        return _field([*where, name]), expected, "an unknown field"
    if validator == "enum":
        return (
            _field(where),
            "one of " + ", ".join(map(_show, schema["enum"])),
            _show(error.instance),
        )
    if validator == "const":
        return _field(where), _show(schema["const"]), _show(error.instance)
    if validator in ("minItems", "minProperties"):
        limit = schema[validator]
        noun = "list" if validator == "minItems" else "mapping"
        return (
            _field(where),
            f"a {noun} with at least {limit} entr{'y' if limit == 1 else 'ies'}",
            ("an empty one" if not error.instance else _show(error.instance)),
        )
    return _field(where), _describe(schema), _show(error.instance)


def _describe(schema: Mapping[str, Any]) -> str:
    """A short English description of what a schema accepts."""
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"an integer from {low} to {high}"
        if low is not None:
            return f"an integer >= {low}"
        if high is not None:
            return f"an integer <= {high}"
        return "an integer"
    if kind == "string":
        if "pattern" in schema:
            return _PATTERN_TEXT.get(schema["pattern"], f"a text matching {schema['pattern']}")
        return "a non-empty text" if schema.get("minLength") else "a text"
    if "enum" in schema:
        return "one of " + ", ".join(map(_show, schema["enum"]))
    if isinstance(kind, str):
        return _TYPE_TEXT.get(kind, kind)
    return "a valid value"


def _field(parts: Iterable[Any]) -> str:
    """Dotted field path: phases.induction.cycles.count, assessments[2].window."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(document)"


def _show(value: Any) -> str:
    """A value as a person reading the YAML file would write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


# --------------------------------------------------------------------------- building


class _Builder:
    """Turns schema-valid data into typed objects, checking what a schema cannot."""

    def __init__(self, data: dict[str, Any], path: Path, text: str) -> None:
        self.data = data
        self.path = path
        self.text = text

    def fail(self, field_path: str, expected: str, got: str | None = None) -> ProtocolError:
        """An error for this file, with the line of the field when it can be found."""
        return ProtocolError(
            self.path, field_path, expected, got, line=_line_of(self.text, field_path)
        )

    def build(self) -> Protocol:
        """The Protocol, or ProtocolError for the first semantic problem."""
        header = self.data["protocol"]
        self._check_header(header)
        drugs = {code: self._drug(code, raw) for code, raw in self.data["drugs"].items()}
        choices = {
            code: self._choice(code, raw, drugs) for code, raw in self.data["choices"].items()
        }
        phases = {
            code: self._phase(code, raw, drugs, choices)
            for code, raw in self.data["phases"].items()
        }
        self._check_phase_graph(phases)
        assessments = self._assessments(self.data.get("assessments", []))
        assessment_days = self._assessment_days(self.data.get("assessment_days"), assessments)
        self._check_response_codes(phases, assessments)
        return Protocol(
            code=header["code"],
            title=header["title_en"].strip(),
            title_zh=header["title_zh"].strip(),
            path=self.path,
            default_timezone=header["default_timezone"],
            working_days_country=header["working_days"],
            choices=choices,
            drugs=drugs,
            phases=phases,
            assessments=assessments,
            settings=self._settings(self.data.get("settings", {})),
            raw=self.data,
            study_completion=self._completion(header),
            assessment_days=assessment_days,
        )

    def _settings(self, raw: Mapping[str, Any]) -> Settings:
        values = {k: v for k, v in raw.items() if k != "closures"}
        closures = raw.get("closures")
        if closures is not None:
            risk = closures["risk_days_after_infusion"]
            if risk["from"] > risk["to"]:
                raise self.fail(
                    "settings.closures.risk_days_after_infusion.to",
                    f"an integer >= from ({risk['from']})",
                    _show(risk["to"]),
                )
            values["closure_min_days"] = closures["min_days"]
            values["closure_risk_days"] = (risk["from"], risk["to"])
        return Settings(**values)

    def _completion(self, header: Mapping[str, Any]) -> date | None:
        raw = header.get("study_completion_date")
        if raw is None:
            return None
        try:
            return date.fromisoformat(str(raw))
        except ValueError as exc:
            raise self.fail(
                "protocol.study_completion_date", "a date as YYYY-MM-DD", _show(raw)
            ) from exc

    def _assessment_days(
        self, raw: Mapping[str, Any] | None, assessments: tuple[Assessment, ...]
    ) -> AssessmentDayRules:
        if raw is None:
            return AssessmentDayRules()
        known = {a.code for a in assessments}
        order = tuple(tuple(group) for group in raw.get("order", []))
        seen: list[str] = []
        for i, group in enumerate(order):
            for code in group:
                if code not in known:
                    raise self.fail(
                        f"assessment_days.order[{i}]",
                        "assessment codes defined under 'assessments': " + ", ".join(sorted(known)),
                        _show(code),
                    )
                if code in seen:
                    raise self.fail(f"assessment_days.order[{i}]", "each code once", _show(code))
                seen.append(code)
        return AssessmentDayRules(
            order=order,
            days_before_infusion=raw.get("days_before_infusion", 0),
            not_on_infusion_day=raw.get("not_on_infusion_day", False),
        )

    def _check_response_codes(
        self, phases: Mapping[str, Phase], assessments: tuple[Assessment, ...]
    ) -> None:
        known = {a.code for a in assessments}
        for phase in phases.values():
            rt = phase.radiotherapy
            if rt is None or rt.response is None:
                continue
            for code in rt.response.assessments:
                if code not in known:
                    raise self.fail(
                        f"phases.{phase.code}.radiotherapy.response_assessment.assessments",
                        "assessment codes defined under 'assessments': " + ", ".join(sorted(known)),
                        _show(code),
                    )

    def _check_header(self, header: dict[str, Any]) -> None:
        try:
            ZoneInfo(header["default_timezone"])
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise self.fail(
                "protocol.default_timezone",
                "an IANA time zone such as 'Asia/Shanghai'",
                _show(header["default_timezone"]),
            ) from exc
        try:
            working_days_for(header["working_days"])
        except ValueError as exc:
            raise self.fail(
                "protocol.working_days",
                "a country code of the holidays library (e.g. 'CN') or 'weekends'",
                _show(header["working_days"]),
            ) from exc

    @staticmethod
    def _window(raw: Mapping[str, int]) -> Window:
        return Window(before=raw["before"], after=raw["after"])

    @staticmethod
    def _guidance(items: Iterable[Mapping[str, str]]) -> tuple[Guidance, ...]:
        return tuple(Guidance(g["code"], g["text_en"].strip(), g["text_zh"].strip()) for g in items)

    def _drug(self, code: str, raw: dict[str, Any]) -> Drug:
        premeds = tuple(
            Premedication(
                code=p["code"],
                offset_days=p["offset_days"],
                duration_days=p["duration_days"],
                window=self._window(p["window"]),
                drug=p.get("drug", ""),
                title_en=p["title_en"].strip(),
                title_zh=p["title_zh"].strip(),
                note_en=p.get("note_en", "").strip(),
                note_zh=p.get("note_zh", "").strip(),
            )
            for p in raw.get("premedication", [])
        )
        return Drug(
            code=code,
            name_en=raw["name_en"],
            name_zh=raw["name_zh"],
            premedication=premeds,
            checkin_guidance=self._guidance(raw.get("checkin_guidance", [])),
            infusion_notes=self._guidance(raw.get("infusion_notes", [])),
        )

    def _drug_dose(self, where: str, raw: Mapping[str, str], drugs: dict[str, Drug]) -> DrugDose:
        if raw["drug"] not in drugs:
            raise self.fail(
                f"{where}.drug",
                "one of the drugs defined under 'drugs': " + ", ".join(drugs),
                _show(raw["drug"]),
            )
        return DrugDose(drugs[raw["drug"]], raw["dose"], raw.get("schedule", ""))

    def _choice(self, code: str, raw: dict[str, Any], drugs: dict[str, Drug]) -> Choice:
        options = {}
        for opt_code, opt in raw["options"].items():
            where = f"choices.{code}.options.{opt_code}.drugs"
            options[opt_code] = Option(
                code=opt_code,
                label_en=opt["label_en"],
                label_zh=opt["label_zh"],
                dose_text=opt["dose_text"],
                drugs=tuple(
                    self._drug_dose(f"{where}[{i}]", d, drugs) for i, d in enumerate(opt["drugs"])
                ),
            )
        return Choice(code, raw["label_en"], raw["label_zh"], options)

    def _phase(
        self,
        code: str,
        raw: dict[str, Any],
        drugs: dict[str, Drug],
        choices: dict[str, Choice],
    ) -> Phase:
        where = f"phases.{code}"
        starts = raw["starts"]
        needs = {
            STARTS_STUDY: "cycles",
            STARTS_AFTER_PHASE: "cycles",
            STARTS_AFTER_TREATMENT: "contacts",
        }.get(starts)
        if needs and needs not in raw:
            raise self.fail(f"{where}.{needs}", f"a {needs} section (starts: {starts})", "nothing")
        if starts == STARTS_ON_DEMAND and not ("cycles" in raw or "radiotherapy" in raw):
            raise self.fail(where, "a cycles or radiotherapy section (starts: on_demand)", "none")
        if starts == STARTS_AFTER_PHASE and "after_phase" not in raw:
            raise self.fail(f"{where}.after_phase", "the phase this one follows", "nothing")
        cycles = (
            self._cycles(f"{where}.cycles", raw["cycles"], drugs, choices, starts)
            if ("cycles" in raw)
            else None
        )
        radiotherapy = (
            self._radiotherapy(f"{where}.radiotherapy", raw["radiotherapy"])
            if "radiotherapy" in raw
            else None
        )
        contacts = tuple(
            self._contact(f"{where}.contacts[{i}]", c)
            for i, c in enumerate(raw.get("contacts", []))
        )
        self._unique([c.code for c in contacts], f"{where}.contacts", "contact codes")
        return Phase(
            code=code,
            label_en=raw["label_en"],
            label_zh=raw["label_zh"],
            description_en=raw.get("description_en", "").strip(),
            description_zh=raw.get("description_zh", "").strip(),
            starts=starts,
            after_phase=raw.get("after_phase"),
            cycles=cycles,
            radiotherapy=radiotherapy,
            contacts=contacts,
            ongoing_treatment=raw.get("ongoing_treatment", "pause"),
            resume_days_after_end=raw.get("resume_days_after_end", 0),
        )

    def _cycles(
        self,
        where: str,
        raw: dict[str, Any],
        drugs: dict[str, Drug],
        choices: dict[str, Choice],
        starts: str,
    ) -> CycleBlock:
        if ("count" in raw) == ("duration" in raw):
            got = "both" if "count" in raw else "neither"
            raise self.fail(where, "either count or duration (exactly one of them)", got)
        if starts == STARTS_ON_DEMAND and "count" not in raw:
            raise self.fail(f"{where}.count", "a cycle count (starts: on_demand)", "nothing")
        if raw["min_interval_days"] > raw["interval_days"]:
            raise self.fail(
                f"{where}.min_interval_days",
                f"an integer <= interval_days ({raw['interval_days']})",
                _show(raw["min_interval_days"]),
            )
        duration = Duration(**raw["duration"]) if "duration" in raw else None
        if duration is not None and duration.after(date(2000, 1, 1)) == date(2000, 1, 1):
            raise self.fail(f"{where}.duration", "a duration longer than 0 days", "0 days")
        refs = tuple(
            self._drug_ref(f"{where}.drugs[{i}]", r, drugs, choices)
            for i, r in enumerate(raw["drugs"])
        )
        infusion = raw["infusion"]
        labs = raw.get("labs")
        checkins = raw.get("checkins")
        return CycleBlock(
            count=raw.get("count"),
            duration=duration,
            interval_days=raw["interval_days"],
            min_interval_days=raw["min_interval_days"],
            numbering=raw.get("numbering", "continue"),
            first_offset_days=raw.get("first_offset_days", 0),
            drugs=refs,
            infusion=EventRule(0, self._window(infusion["window"]), infusion["working_day"]),
            labs=None
            if labs is None
            else LabsRule(
                EventRule(
                    labs["offset_days"],
                    self._window(labs["window"]),
                    labs["working_day"],
                    labs.get("placement", "nearest"),
                ),
                tuple(
                    LabPanel(
                        p["code"],
                        p["label_en"],
                        p["label_zh"],
                        p.get("every_n_cycles", 1),
                        p.get("first_cycle", 1),
                        self._fasting(p.get("fasting")),
                    )
                    for p in labs["panels"]
                ),
            ),
            on_radiotherapy=raw.get("on_radiotherapy", False),
            checkins=None
            if checkins is None
            else CheckinRule(
                tuple(sorted(set(checkins["days_after_infusion"]))),
                self._window(checkins["window"]),
                checkins["working_day"],
            ),
        )

    def _drug_ref(
        self,
        where: str,
        raw: dict[str, Any],
        drugs: dict[str, Drug],
        choices: dict[str, Choice],
    ) -> DrugRef:
        if ("choice" in raw) == ("drug" in raw):
            raise self.fail(
                where,
                "either choice: <choice> or drug: <drug> with a dose",
                "both" if "choice" in raw else "neither",
            )
        if "choice" in raw:
            if raw["choice"] not in choices:
                raise self.fail(
                    f"{where}.choice",
                    "one of the choices defined under 'choices': " + (", ".join(choices) or "none"),
                    _show(raw["choice"]),
                )
            extra = sorted(set(raw) - {"choice"})
            if extra:
                raise self.fail(
                    f"{where}.{extra[0]}", "no dose here: it comes from the chosen option", "one"
                )
            return DrugRef(choice=raw["choice"])
        if "dose" not in raw:
            raise self.fail(f"{where}.dose", "the dose as written in the protocol", "nothing")
        return DrugRef(fixed=self._drug_dose(where, raw, drugs))

    def _radiotherapy(self, where: str, raw: dict[str, Any]) -> RadiotherapyBlock:
        fr = raw["fractions"]
        if fr["min"] > fr["max"]:
            raise self.fail(
                f"{where}.fractions.max", f"an integer >= min ({fr['min']})", _show(fr["max"])
            )
        if not fr["min"] <= fr["default"] <= fr["max"]:
            raise self.fail(
                f"{where}.fractions.default",
                f"an integer from {fr['min']} to {fr['max']}",
                _show(fr["default"]),
            )
        checkins = raw.get("checkins", {})
        return RadiotherapyBlock(
            label_en=raw["label_en"],
            label_zh=raw["label_zh"],
            dose_text=raw["dose_text"],
            fractions_min=fr["min"],
            fractions_max=fr["max"],
            fractions_default=fr["default"],
            checkin_weekly_days=tuple(sorted(set(checkins.get("weekly_days", [])))),
            checkin_days_after_end=tuple(sorted(set(checkins.get("days_after_end", [])))),
            checkin_window=self._window(checkins.get("window", {"before": 0, "after": 0})),
            checkin_working_day=checkins.get("working_day", False),
            max_overall_days=raw.get("max_overall_days"),
            response=self._response(raw.get("response_assessment")),
        )

    def _response(self, raw: Mapping[str, Any] | None) -> ResponseAssessment | None:
        if raw is None:
            return None
        return ResponseAssessment(
            weeks_after_end=raw["weeks_after_end"],
            window=self._window(raw["window"]),
            assessments=tuple(raw["assessments"]),
        )

    @staticmethod
    def _fasting(raw: Mapping[str, int] | None) -> Fasting | None:
        if raw is None:
            return None
        return Fasting(raw.get("food_hours", 0), raw.get("water_hours", 0))

    def _contact(self, where: str, raw: dict[str, Any]) -> ContactRule:
        if ("days_after_last_dose" in raw) == ("every_days" in raw):
            raise self.fail(
                where,
                "either days_after_last_dose or every_days",
                "both" if "every_days" in raw else "neither",
            )
        if (
            "every_days" in raw
            and "until_years_after_recurrence" not in raw
            and not raw.get("until_study_completion")
        ):
            raise self.fail(
                f"{where}.until_years_after_recurrence",
                "how many years after the recurrence periodic contacts end",
                "nothing",
            )
        return ContactRule(
            code=raw["code"],
            label_en=raw["label_en"],
            label_zh=raw["label_zh"],
            days_after_last_dose=tuple(sorted(set(raw.get("days_after_last_dose", [])))),
            every_days=raw.get("every_days"),
            until_years_after_recurrence=raw.get("until_years_after_recurrence"),
            final_contact_at_end=raw.get("final_contact_at_end", False),
            window=self._window(raw["window"]),
            working_day=raw["working_day"],
            until_study_completion=raw.get("until_study_completion", False),
        )

    def _check_phase_graph(self, phases: dict[str, Phase]) -> None:
        firsts = [p.code for p in phases.values() if p.starts == STARTS_STUDY]
        if len(firsts) != 1:
            raise self.fail(
                "phases",
                "exactly one phase with starts: study_start",
                f"{len(firsts)} ({', '.join(firsts) or 'none'})",
            )
        with_cycles = [p.code for p in phases.values() if p.cycles and p.starts != STARTS_ON_DEMAND]
        followed: dict[str, str] = {}
        for phase in phases.values():
            if phase.starts != STARTS_AFTER_PHASE:
                continue
            where = f"phases.{phase.code}.after_phase"
            allowed = [c for c in with_cycles if c != phase.code]
            if phase.after_phase not in allowed:
                raise self.fail(
                    where,
                    "the name of another phase with cycles: " + (", ".join(allowed) or "none"),
                    _show(phase.after_phase),
                )
            if phase.after_phase in followed:
                raise self.fail(
                    where,
                    f"a phase no other phase follows ({followed[phase.after_phase]} already "
                    f"follows {phase.after_phase})",
                    _show(phase.after_phase),
                )
            followed[phase.after_phase] = phase.code
        self._check_chain_reaches_all(phases, firsts[0], followed)
        for starts in (STARTS_ON_DEMAND, STARTS_AFTER_TREATMENT):
            codes = [p.code for p in phases.values() if p.starts == starts]
            if len(codes) > 1:
                raise self.fail(
                    f"phases.{codes[1]}.starts",
                    f"at most one phase with starts: {starts}",
                    _show(starts),
                )

    def _check_chain_reaches_all(
        self, phases: dict[str, Phase], first: str, followed: dict[str, str]
    ) -> None:
        reached = [first]
        while reached[-1] in followed and followed[reached[-1]] not in reached:
            reached.append(followed[reached[-1]])
        for phase in phases.values():
            if phase.starts == STARTS_AFTER_PHASE and phase.code not in reached:
                raise self.fail(
                    f"phases.{phase.code}.after_phase",
                    f"a phase reached from the study start ({' -> '.join(reached)})",
                    _show(phase.after_phase),
                )

    def _assessments(self, items: list[dict[str, Any]]) -> tuple[Assessment, ...]:
        result = []
        for i, raw in enumerate(items):
            where = f"assessments[{i}]"
            on_demand = raw.get("on_demand", False)
            segments = tuple(
                AssessmentSegment(s["from_week"], s["every_weeks"], s.get("to_week"))
                for s in raw.get("schedule", [])
            )
            if not on_demand and not segments:
                raise self.fail(
                    f"{where}.schedule",
                    "a non-empty list of schedule segments (or on_demand: true)",
                    "nothing",
                )
            for j, seg in enumerate(segments):
                if seg.to_week is not None and seg.to_week < seg.from_week:
                    raise self.fail(
                        f"{where}.schedule[{j}].to_week",
                        f"an integer >= from_week ({seg.from_week})",
                        _show(seg.to_week),
                    )
            result.append(
                Assessment(
                    code=raw["code"],
                    kind=raw["kind"],
                    label_en=raw["label_en"],
                    label_zh=raw["label_zh"],
                    segments=segments,
                    until=raw.get("until", "treatment_end"),
                    on_demand=on_demand,
                    note_en=raw.get("note_en", "").strip(),
                    note_zh=raw.get("note_zh", "").strip(),
                    window=self._window(raw["window"]),
                    working_day=raw["working_day"],
                    fasting=self._fasting(raw.get("fasting")),
                    contrast=raw.get("contrast"),
                    contrast_after_radiotherapy=raw.get("contrast_after_radiotherapy"),
                )
            )
        self._unique([a.code for a in result], "assessments", "assessment codes")
        return tuple(result)

    def _unique(self, codes: list[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for code in codes:
            if code in seen:
                raise self.fail(where, f"unique {what}", f"{code!r} twice")
            seen.add(code)
