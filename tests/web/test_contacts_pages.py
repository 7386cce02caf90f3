"""The contacts pages (issue 14): list, add, change, deactivate; consents recorded, withdrawn and
confirmed; validation with clear errors; every change audited; per-contact calendars."""

from __future__ import annotations

from datetime import date, timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, Contact, ContactConsent, OutboxMessage, Patient
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post

DAUGHTER = "13900139001"


def _contacts(patient: Patient) -> list[Contact]:
    return list(
        db.session.scalars(
            select(Contact)
            .where(Contact.patient_id == patient.id)
            .order_by(Contact.position, Contact.id)
            .execution_options(populate_existing=True)
        )
    )


def _add_daughter(client: FlaskClient, patient: Patient, **changes: object):
    form: dict[str, object] = {
        "relation": "daughter",
        "name": "王芳",
        "phone": DAUGHTER,
        "locale": "zh",
        "messages": ["reminders", "checkins"],
        "position": "",
    }
    form.update(changes)
    return post(client, f"/patients/{patient.study_id}/contacts/", form)


def _record_consent(client: FlaskClient, patient: Patient, contact: Contact, **changes: object):
    prefix = f"c{contact.id}-"
    form: dict[str, object] = {
        "recorded_on": clinic_today().isoformat(),
        "method": "paper",
        "scopes": ["sms_reminders", "checkins", "sensitive_health"],
        "witness": "",
        "note": "",
    }
    form.update(changes)
    data = {prefix + k: v for k, v in form.items()}
    return post(client, f"/patients/{patient.study_id}/contacts/{contact.id}/consents", data)


def _audit(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


# -- adding, validation, audit -------------------------------------------------------------------


def test_a_caregiver_is_added_consented_and_shown_on_the_patient_page(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    response = _add_daughter(english_nurse, patient)
    assert response.status_code == 302
    own, daughter = _contacts(patient)
    assert (daughter.relation, daughter.phone_e164, daughter.position) == (
        "daughter",
        "+86" + DAUGHTER,
        1,
    )
    assert daughter.messages == ["reminders", "checkins"]
    assert daughter.scopes_in_force() == set()
    page = english_nurse.get(f"/patients/{patient.study_id}/contacts/").get_data(as_text=True)
    assert "Not sent: no consent covering it" in page

    response = _record_consent(english_nurse, patient, daughter)
    assert response.status_code == 302
    db.session.refresh(daughter)
    assert daughter.scopes_in_force() == {"sms_reminders", "checkins", "sensitive_health"}
    [consent] = daughter.consents
    assert (consent.method, consent.recorded_by) == ("paper", "user:nurse.wang")
    [added] = _audit("contact.add")
    [recorded] = _audit("contact.consent_recorded")
    assert added.actor == recorded.actor == "user:nurse.wang"
    assert added.after["phone"] != daughter.phone_e164  # masked in the audit log
    detail = english_nurse.get(f"/patients/{patient.study_id}").get_data(as_text=True)
    assert "Daughter (王*)" in detail
    assert own.phone_e164 not in detail  # the patient page masks numbers


def test_bad_contact_input_gets_a_clear_error_on_its_field_and_nothing_is_saved(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    response = _add_daughter(english_nurse, patient, phone="12345")
    assert response.status_code == 400
    assert "This number is not valid" in response.get_data(as_text=True)
    response = _add_daughter(english_nurse, patient, phone=patient.phone_e164)
    assert response.status_code == 400
    assert "already has a contact with this number" in response.get_data(as_text=True)
    response = _add_daughter(english_nurse, patient, relation="cousin")
    assert response.status_code == 400
    assert len(_contacts(patient)) == 1
    assert _audit("contact.add") == []


def test_a_verbal_consent_needs_a_witness_and_a_future_date_is_refused(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    _add_daughter(english_nurse, patient)
    daughter = _contacts(patient)[1]
    response = _record_consent(english_nurse, patient, daughter, method="verbal_witness")
    assert response.status_code == 400
    assert "needs the witness" in response.get_data(as_text=True)
    future = (clinic_today() + timedelta(days=3)).isoformat()
    response = _record_consent(english_nurse, patient, daughter, recorded_on=future)
    assert response.status_code == 400
    response = _record_consent(english_nurse, patient, daughter, scopes=[])
    assert response.status_code == 400
    assert "Choose what the contact consented to" in response.get_data(as_text=True)
    db.session.refresh(daughter)
    assert daughter.consents == []
    response = _record_consent(
        english_nurse, patient, daughter, method="verbal_witness", witness="李护士"
    )
    assert response.status_code == 302


def test_editing_needs_a_reason_and_is_audited(english_nurse: FlaskClient) -> None:
    patient = enrol()
    _add_daughter(english_nurse, patient)
    daughter = _contacts(patient)[1]
    url = f"/patients/{patient.study_id}/contacts/{daughter.id}/edit"
    assert english_nurse.get(url).status_code == 200
    form = {
        "relation": "daughter",
        "name": "王芳",
        "phone": "13900139009",
        "locale": "en",
        "messages": ["reminders"],
        "position": "1",
    }
    response = post(english_nurse, url, form)
    assert response.status_code == 400
    assert "Say why." in response.get_data(as_text=True)
    response = post(english_nurse, url, form | {"reason": "new phone"})
    assert response.status_code == 302
    db.session.refresh(daughter)
    assert (daughter.phone_e164, daughter.locale) == ("+8613900139009", "en")
    [entry] = _audit("contact.update")
    assert entry.reason == "new phone"
    assert entry.before["locale"] == "zh" and entry.after["locale"] == "en"


def test_deactivating_a_contact_cancels_its_messages_and_is_audited(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    _add_daughter(english_nurse, patient)
    own, daughter = _contacts(patient)
    _record_consent(english_nurse, patient, daughter)

    def planned_to(contact: Contact) -> list[OutboxMessage]:
        return list(
            db.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.contact_id == contact.id, OutboxMessage.status == "planned")
                .execution_options(populate_existing=True)
            )
        )

    assert planned_to(own) and not planned_to(daughter)
    url = f"/patients/{patient.study_id}/contacts/{own.id}/active/0"
    assert post(english_nurse, url, {"reason": ""}).status_code == 302
    db.session.refresh(own)
    assert own.active
    assert post(english_nurse, url, {"reason": "lost the phone"}).status_code == 302
    db.session.refresh(own)
    assert not own.active
    assert planned_to(own) == []
    assert planned_to(daughter)  # the reminders now go to the next contact
    [entry] = _audit("contact.deactivated")
    assert entry.reason == "lost the phone"


def test_a_withdrawal_is_recorded_with_method_and_reason(english_nurse: FlaskClient) -> None:
    patient = enrol()
    _add_daughter(english_nurse, patient)
    daughter = _contacts(patient)[1]
    _record_consent(english_nurse, patient, daughter)
    db.session.refresh(daughter)
    [consent] = daughter.consents
    url = f"/patients/{patient.study_id}/contacts/{daughter.id}/consents/{consent.id}/withdraw"
    response = post(english_nurse, url, {"method": "verbal_witness", "reason": "asked by phone"})
    assert response.status_code == 302
    db.session.refresh(consent)
    assert consent.withdrawn_at is not None
    assert (consent.withdrawn_by, consent.withdrawal_method) == ("user:nurse.wang", "verbal_witness")
    db.session.refresh(daughter)
    assert daughter.scopes_in_force() == set()


def test_another_patients_contact_is_not_found(english_nurse: FlaskClient) -> None:
    first = enrol("JSCH-101")
    second = enrol("JSCH-102")
    own = _contacts(first)[0]
    url = f"/patients/{second.study_id}/contacts/{own.id}/edit"
    assert english_nurse.get(url).status_code == 404
    assert english_nurse.get(f"/patients/{second.study_id}/contacts/{own.id}/print").status_code == 404


def test_an_account_without_write_rights_cannot_change_contacts(admin: FlaskClient) -> None:
    patient = enrol()
    assert _add_daughter(admin, patient).status_code == 403
    assert len(_contacts(patient)) == 1
