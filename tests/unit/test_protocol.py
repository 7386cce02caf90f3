"""The protocol file: loading, the typed objects, choices, and the errors of a bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.domain.protocol import (
    ChoiceError,
    Protocol,
    ProtocolError,
    default_protocol_path,
    load_protocol,
)

DATA = Path(__file__).parent / "data"
MINI = DATA / "mini_protocol.yaml"


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(default_protocol_path())


def test_default_path_is_the_trial_file() -> None:
    path = default_protocol_path()
    assert path.name == "nct07016737.yaml"
    assert path.parent.name == "protocols"
    assert path.is_file()


def test_trial_header(protocol: Protocol) -> None:
    assert protocol.code == "NCT07016737"
    assert protocol.title.startswith("Immunochemotherapy")
    assert protocol.title_zh
    assert protocol.default_timezone == "Asia/Shanghai"
    assert protocol.working_days_country == "CN"
    assert protocol.path == default_protocol_path()


def test_trial_choices_and_doses_as_written(protocol: Protocol) -> None:
    assert list(protocol.choices) == ["pd1", "chemo"]
    pd1, chemo = protocol.choices["pd1"], protocol.choices["chemo"]
    assert list(pd1.options) == ["sintilimab", "camrelizumab"]
    assert list(chemo.options) == ["paclitaxel", "docetaxel", "irinotecan"]
    doses = {
        code: [d.text_en for d in option.drugs]
        for choice in (pd1, chemo)
        for code, option in choice.options.items()
    }
    assert doses == {
        "sintilimab": ["sintilimab 200 mg"],
        "camrelizumab": ["camrelizumab 200 mg"],
        "paclitaxel": ["paclitaxel 175 mg/m2"],
        "docetaxel": ["docetaxel 75 mg/m2"],
        "irinotecan": ["irinotecan 270 mg/m2"],
    }
    assert chemo.options["docetaxel"].label_zh == "多西他赛"
    assert pd1.options["sintilimab"].label_zh == "信迪利单抗"
    assert chemo.options["irinotecan"].dose_text == "irinotecan 270mg/m2, d1, q3w"


def test_trial_phases(protocol: Protocol) -> None:
    assert list(protocol.phases) == ["induction", "maintenance", "salvage", "follow_up"]
    assert [p.code for p in protocol.chain()] == ["induction", "maintenance"]
    induction = protocol.phases["induction"].cycles
    maintenance = protocol.phases["maintenance"].cycles
    assert induction is not None and maintenance is not None
    assert (induction.count, induction.interval_days, induction.min_interval_days) == (4, 21, 18)
    assert maintenance.count is None and maintenance.duration is not None
    assert maintenance.duration.years == 2
    salvage = protocol.on_demand_phase()
    assert salvage is not None and salvage.code == "salvage"
    assert salvage.ongoing_treatment == "pause"
    assert salvage.radiotherapy is not None
    assert (salvage.radiotherapy.fractions_min, salvage.radiotherapy.fractions_max) == (25, 28)
    assert salvage.radiotherapy.fractions_default == 28
    assert salvage.cycles is not None
    assert (salvage.cycles.count, salvage.cycles.interval_days) == (5, 7)
    follow_up = protocol.follow_up_phase()
    assert follow_up is not None
    survival = next(c for c in follow_up.contacts if c.code == "survival")
    assert (survival.every_days, survival.until_years_after_recurrence) == (60, 2)


def test_trial_premedication_and_guidance(protocol: Protocol) -> None:
    docetaxel = protocol.drugs["docetaxel"].premedication
    assert [(p.offset_days, p.duration_days) for p in docetaxel] == [(-1, 3)]
    paclitaxel = protocol.drugs["paclitaxel"].premedication
    assert [(p.offset_days, p.duration_days) for p in paclitaxel] == [(0, 1)]
    assert protocol.drugs["irinotecan"].premedication == ()
    assert [g.code for g in protocol.drugs["irinotecan"].checkin_guidance] == ["loperamide"]


def test_assessments_named_by_the_registry(protocol: Protocol) -> None:
    codes = {a.code: a for a in protocol.assessments}
    assert set(codes) == {"ct", "ultrasound", "barium_swallow", "gastroscopy", "pet_ct"}
    assert codes["gastroscopy"].kind == "endoscopy"
    assert codes["pet_ct"].on_demand
    assert codes["ct"].weeks(7 * 110) == [6, 12, 18, 24, 30, 36, 42, 48, 60, 72, 84, 96, 108]


def test_settings_and_raw(protocol: Protocol) -> None:
    assert protocol.settings.non_working_day_tie_break == "earlier"
    assert protocol.settings.assessments_follow_treatment_delays is False
    assert protocol.raw["protocol"]["code"] == "NCT07016737"


def test_validate_choices_normalises(protocol: Protocol) -> None:
    result = protocol.validate_choices({"PD1": " Sintilimab ", "chemo": "DOCETAXEL"})
    assert result == {"pd1": "sintilimab", "chemo": "docetaxel"}


def test_missing_choice_lists_allowed_values(protocol: Protocol) -> None:
    with pytest.raises(ChoiceError) as err:
        protocol.validate_choices({"pd1": "sintilimab"})
    assert str(err.value) == (
        "missing choice 'chemo' (Chemotherapy (single agent)): "
        "choose one of paclitaxel, docetaxel, irinotecan"
    )
    assert err.value.field == "choices.chemo"


def test_unknown_choice_value_lists_allowed_values(protocol: Protocol) -> None:
    with pytest.raises(ValueError) as err:
        protocol.validate_choices({"pd1": "nivolumab", "chemo": "docetaxel"})
    assert str(err.value) == (
        "unknown pd1 'nivolumab' (PD-1 inhibitor): expected one of sintilimab, camrelizumab"
    )


def test_unknown_choice_name(protocol: Protocol) -> None:
    with pytest.raises(ChoiceError, match="unknown choice 'arm': this protocol's choices are"):
        protocol.validate_choices({"pd1": "sintilimab", "chemo": "docetaxel", "arm": "x"})


def test_second_protocol_loads_with_other_choices_and_phases() -> None:
    mini = load_protocol(MINI)
    assert mini.code == "TOY-0001"
    assert list(mini.choices) == ["regimen"]
    assert [p.code for p in mini.chain()] == ["induction", "maintenance"]
    assert mini.phases["maintenance"].cycles.numbering == "restart"  # type: ignore[union-attr]
    assert mini.settings.non_working_day_tie_break == "later"
    assert mini.raw["reminders"] == {"anything": ["goes", "here"]}
    assert mini.raw["checkins"] == {"items": {"free": "form"}}
    assert mini.validate_choices({"regimen": "b"}) == {"regimen": "b"}


def test_reminders_and_checkins_sections_are_free_form(tmp_path: Path) -> None:
    data = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    data["reminders"] = {"infusion": {"days_before": [1], "at": "18:00"}}
    data["checkins"] = {"q1": {"x": 1}}
    path = tmp_path / "with_sections.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    loaded = load_protocol(path)
    assert loaded.raw["reminders"]["infusion"]["days_before"] == [1]
    assert loaded.raw["checkins"] == {"q1": {"x": 1}}


BAD_FILES = {
    "bad_count_type.yaml": (
        "phases.induction.cycles.count",
        "phases.induction.cycles.count (line 65): expected an integer >= 1, got 'three'",
    ),
    "bad_negative_window.yaml": (
        "phases.induction.cycles.infusion.window.before",
        "phases.induction.cycles.infusion.window.before (line 71): "
        "expected an integer >= 0, got -2",
    ),
    "bad_unknown_choice.yaml": (
        "phases.induction.cycles.drugs[0].choice",
        "phases.induction.cycles.drugs[0].choice (line 69): "
        "expected one of the choices defined under 'choices': regimen, got 'regimn'",
    ),
    "bad_unknown_drug.yaml": (
        "phases.induction.cycles.drugs[1].drug",
        "phases.induction.cycles.drugs[1].drug (line 70): "
        "expected one of the drugs defined under 'drugs': alpha, beta, gamma, got 'delta'",
    ),
    "bad_unknown_phase.yaml": (
        "phases.maintenance.after_phase",
        "phases.maintenance.after_phase (line 87): "
        "expected the name of another phase with cycles: induction, got 'inductoin'",
    ),
    "bad_min_interval.yaml": (
        "phases.maintenance.cycles.min_interval_days",
        "phases.maintenance.cycles.min_interval_days (line 91): "
        "expected an integer <= interval_days (28), got 30",
    ),
    "bad_misspelt_field.yaml": (
        "phases.maintenance.cycles.interval_dayz",
        "phases.maintenance.cycles.interval_dayz (line 90): expected one of the known fields: "
        "checkins, count, drugs, duration, first_offset_days, infusion, interval_days, labs, "
        "min_interval_days, numbering, on_radiotherapy (did you mean 'interval_days'?), got an unknown field "
        "(and 1 more problem in the file)",
    ),
    "bad_timezone.yaml": (
        "protocol.default_timezone",
        "protocol.default_timezone (line 8): expected an IANA time zone such as "
        "'Asia/Shanghai', got 'Europe/Pariss'",
    ),
    "bad_yaml_syntax.yaml": (
        "line 44, column 13",
        "line 44, column 13: expected valid YAML, got expected ',' or ']', but got ':' "
        "(while parsing a flow sequence)",
    ),
    "bad_duplicate_key.yaml": (
        "line 35, column 5",
        "line 35, column 5: expected valid YAML, got found duplicate key 'name_en' "
        "(while reading a mapping)",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_file_names_file_field_and_expectation(name: str) -> None:
    path = DATA / name
    field, message = BAD_FILES[name]
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert str(err.value) == f"{path}: {message}"
    assert err.value.file == str(path)
    assert err.value.field == field


def test_error_attributes_for_a_schema_error() -> None:
    with pytest.raises(ProtocolError) as err:
        load_protocol(DATA / "bad_count_type.yaml")
    assert err.value.expected == "an integer >= 1"
    assert err.value.got == "'three'"
    assert err.value.line == 65


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _mini_with(tmp_path: Path, old: str, new: str) -> Path:
    text = MINI.read_text(encoding="utf-8")
    assert old in text
    return _write(tmp_path, text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        (
            "ongoing_treatment: stop",
            "ongoing_treatment: halt",
            "phases.salvage.ongoing_treatment",
            "one of 'pause', 'continue', 'stop'",
        ),
        (
            "fractions: {min: 5, max: 10, default: 10}",
            "fractions: {min: 5, max: 10, default: 12}",
            "phases.salvage.radiotherapy.fractions.default",
            "an integer from 5 to 10",
        ),
        (
            "      count: 3\n",
            "      count: 3\n      duration: {years: 1}\n",
            "phases.induction.cycles",
            "either count or duration (exactly one of them)",
        ),
        (
            "  follow_up:\n",
            "  followup:\n",
            "phases.followup",
            "one of the known fields: follow_up, induction, maintenance, salvage "
            "(did you mean 'follow_up'?)",
        ),
        (
            "working_days: weekends",
            "working_days: XX",
            "protocol.working_days",
            "a country code of the holidays library (e.g. 'CN') or 'weekends'",
        ),
        (
            "        every_days: 90\n",
            "        every_days: -90\n",
            "phases.follow_up.contacts[0].every_days",
            "an integer >= 1",
        ),
        (
            "    starts: after_phase\n",
            "    starts: study_start\n",
            "phases",
            "exactly one phase with starts: study_start",
        ),
        (
            "      - {from_week: 8, every_weeks: 8}\n",
            "      - {from_week: 8, every_weeks: 8, to_week: 4}\n",
            "assessments[0].schedule[0].to_week",
            "an integer >= from_week (8)",
        ),
    ],
)
def test_schema_and_semantic_errors(
    tmp_path: Path, old: str, new: str, field: str, expected: str
) -> None:
    path = _mini_with(tmp_path, old, new)
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert err.value.field == field
    assert err.value.expected == expected
    assert str(err.value).startswith(f"{path}: {field}")


def test_missing_required_field(tmp_path: Path) -> None:
    path = _mini_with(tmp_path, "      min_interval_days: 24\n", "")
    with pytest.raises(ProtocolError) as err:
        load_protocol(path)
    assert err.value.field == "phases.maintenance.cycles.min_interval_days"
    assert "expected this required field, got nothing" in str(err.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match=r"expected a mapping of sections .*got an empty file"):
        load_protocol(_write(tmp_path, ""))
    with pytest.raises(ProtocolError, match="expected a readable protocol file"):
        load_protocol(tmp_path / "nope.yaml")
