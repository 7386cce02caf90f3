"""The contacts pages (issue 14): list, add, change, deactivate; consents recorded, withdrawn and
confirmed; validation with clear errors; every change audited; per-contact calendars."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, AuditEntry, Contact, ContactConsent, OutboxMessage, Patient, utcnow
from app.services.conversations.inbound.replies import receive
from app.services.messaging.reminders import blocked_reason
from app.services.schedule import contacts as contact_service
from app.services.schedule.contacts import ConsentInput, ContactInput
from app.web.helpers import clinic_today
from tests.web.conftest import enrol, post
from tests.web.test_zh_guard import _data_words, latin_runs

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
    assert (consent.withdrawn_by, consent.withdrawal_method) == (
        "user:nurse.wang",
        "verbal_witness",
    )
    db.session.refresh(daughter)
    assert daughter.scopes_in_force() == set()


def test_another_patients_contact_is_not_found(english_nurse: FlaskClient) -> None:
    first = enrol("JSCH-101")
    second = enrol("JSCH-102")
    own = _contacts(first)[0]
    url = f"/patients/{second.study_id}/contacts/{own.id}/edit"
    assert english_nurse.get(url).status_code == 404
    assert (
        english_nurse.get(f"/patients/{second.study_id}/contacts/{own.id}/print").status_code == 404
    )


def test_an_account_without_write_rights_cannot_change_contacts(admin: FlaskClient) -> None:
    patient = enrol()
    assert _add_daughter(admin, patient).status_code == 403
    assert len(_contacts(patient)) == 1


# -- enrolment: separate consents; migrated consents wait for a nurse ----------------------------


def _enrol_form(**changes: object) -> dict[str, object]:
    today = clinic_today()
    form: dict[str, object] = {
        "study_id": "JSCH-080",
        "initials": "ZS",
        "phone": "139 1234 5678",
        "choice_pd1": "camrelizumab",
        "choice_chemo": "irinotecan",
        "start_date": (today + timedelta(days=7)).isoformat(),
        "recurrence_date": (today - timedelta(days=30)).isoformat(),
        "sms_consent": "y",
        "sms_consent_date": today.isoformat(),
        "locale": "zh",
        "timezone": "Asia/Shanghai",
    }
    form.update(changes)
    return form


def _enrolled(study_id: str) -> Patient:
    patient = db.session.scalar(select(Patient).where(Patient.study_id == study_id))
    assert patient is not None
    return patient


def test_enrolment_records_the_health_information_consent_separately(
    english_nurse: FlaskClient,
) -> None:
    page = english_nurse.get("/patients/new").get_data(as_text=True)
    assert 'name="sms_consent"' in page and 'name="health_consent"' in page
    response = post(english_nurse, "/patients/new", _enrol_form())
    assert response.status_code == 302
    [own] = _contacts(_enrolled("JSCH-080"))
    assert own.scopes_in_force() == {"sms_reminders"}
    assert own.consents[0].recorded_by == "user:nurse.wang"

    response = post(english_nurse, "/patients/new", _enrol_form(
        study_id="JSCH-081", phone="139 1234 5679", health_consent="y"))  # fmt: skip
    assert response.status_code == 302
    [own] = _contacts(_enrolled("JSCH-081"))
    assert own.scopes_in_force() == {"sms_reminders", "checkins", "sensitive_health"}


def _as_migrated(patient: Patient) -> ContactConsent:
    """Make the patient's consent look like one the contacts migration made (to confirm)."""
    own = _contacts(patient)[0]
    consent = own.consents[0]
    consent.method = "before_contacts"
    consent.note = "recorded before contacts existed"
    consent.needs_confirmation = True
    db.session.commit()
    return consent


def test_a_migrated_consent_covers_reminders_only_until_a_nurse_confirms_it(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    consent = _as_migrated(patient)
    own = _contacts(patient)[0]
    assert blocked_reason(patient, "reminder") is None
    assert blocked_reason(patient, "checkin") == "no_consent"
    page = english_nurse.get(f"/patients/{patient.study_id}/contacts/").get_data(as_text=True)
    assert f'id="needs-confirmation-{own.id}"' in page
    assert "Consent to confirm" in english_nurse.get(f"/patients/{patient.study_id}").get_data(
        as_text=True
    )

    url = f"/patients/{patient.study_id}/contacts/{own.id}/consents/{consent.id}/confirm"
    assert post(english_nurse, url, {"reason": ""}).status_code == 302
    db.session.refresh(consent)
    assert consent.needs_confirmation
    assert post(english_nurse, url, {"reason": "signed form checked"}).status_code == 302
    db.session.refresh(consent)
    assert not consent.needs_confirmation
    db.session.expire_all()
    assert blocked_reason(_enrolled(patient.study_id), "checkin") is None
    [entry] = _audit("contact.consent_confirmed")
    assert (entry.actor, entry.reason) == ("user:nurse.wang", "signed form checked")


# -- who wrote; numbers to call; a contact's calendar --------------------------------------------


def _daughter_with_consent(patient: Patient, locale: str = "zh") -> Contact:
    now = utcnow()
    contact = contact_service.add_contact(
        patient,
        ContactInput(relation="daughter", phone=DAUGHTER, name="王芳", locale=locale),
        actor="user:test",
        now=now,
    )
    contact_service.record_consent(
        contact,
        ConsentInput(recorded_on=clinic_today(), method="paper",
                     scopes=("sms_reminders", "checkins", "sensitive_health")),
        actor="user:test",
        now=now,
        today=clinic_today(),
    )  # fmt: skip
    db.session.commit()
    return contact


def test_a_caregivers_red_report_shows_who_wrote_and_every_number_to_call(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    daughter = _daughter_with_consent(patient)
    receive({"MessageSid": "SMweb00000000000000000000000001", "From": "+86" + DAUGHTER,
             "Body": "我爸今天吐血了"}, utcnow())  # fmt: skip
    alert = db.session.scalar(select(Alert).where(Alert.patient_id == patient.id))
    assert alert is not None and alert.level == "red"
    page = english_nurse.get("/inbox/").get_data(as_text=True)
    assert "Sent by: Daughter (王*)" in page
    numbers = page.split(f'id="numbers-{alert.id}"', 1)[1].split("</div>", 1)[0]
    assert patient.phone_e164 in numbers and daughter.phone_e164 in numbers
    conversation = english_nurse.get(f"/patients/{patient.study_id}/conversation")
    assert "Sent by: Daughter (王*)" in conversation.get_data(as_text=True)


def test_a_deactivated_contact_is_not_listed_to_call_and_routine_items_list_no_numbers(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    daughter = _daughter_with_consent(patient)
    contact_service.committed(contact_service.set_contact_active, daughter, False,
                              actor="user:test", now=utcnow(), reason="moved")  # fmt: skip
    receive({"MessageSid": "SMweb00000000000000000000000002", "From": patient.phone_e164,
             "Body": "我今天吐血了"}, utcnow())  # fmt: skip
    receive({"MessageSid": "SMweb00000000000000000000000003", "From": patient.phone_e164,
             "Body": "下次化疗想改期"}, utcnow())  # fmt: skip
    page = english_nurse.get("/inbox/").get_data(as_text=True)
    assert page.count('class="numbers"') == 1
    assert daughter.phone_e164 not in page and patient.phone_e164 in page


def test_a_contacts_calendar_is_in_their_language_and_names_no_drug(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    daughter = _daughter_with_consent(patient, locale="en")
    base = f"/patients/{patient.study_id}/contacts/{daughter.id}"
    ics = english_nurse.get(f"{base}/calendar.ics")
    assert ics.status_code == 200 and ics.mimetype == "text/calendar"
    body = ics.get_data(as_text=True)
    assert "Treatment day at the hospital" in body and "Blood test at the hospital" in body
    sheet = english_nurse.get(f"{base}/print").get_data(as_text=True)
    assert "Hospital appointments of WL" in sheet
    own = english_nurse.get(f"/patients/{patient.study_id}/calendar.ics").get_data(as_text=True)
    assert "信迪利单抗" in own or "Sintilimab" in own  # the patient's own copy names the drug
    for text in (body, sheet):
        lowered = text.lower()
        for word in (
            "sintilimab",
            "docetaxel",
            "信迪利",
            "多西他赛",
            "cancer",
            "癌",
            "chemo",
            "化疗",
        ):
            assert word not in lowered, word


def test_contact_changes_read_in_chinese_everywhere(nurse: FlaskClient) -> None:
    patient = enrol()
    consent = _as_migrated(patient)
    own = _contacts(patient)[0]
    response = _add_daughter(nurse, patient)
    assert response.status_code == 302
    daughter = _contacts(patient)[1]
    _record_consent(nurse, patient, daughter, method="verbal_witness", witness="李护士")
    base = f"/patients/{patient.study_id}/contacts"
    post(nurse, f"{base}/{own.id}/consents/{consent.id}/confirm", {"reason": "核对了签字同意书"})
    post(nurse, f"{base}/{daughter.id}/active/0", {"reason": "换了手机"})
    receive({"MessageSid": "SMweb00000000000000000000000004", "From": "+86" + DAUGHTER,
             "Body": "我爸今天吐血了"}, utcnow())  # fmt: skip
    allowed = _data_words({"test"})  # the enrolment's actor in these tests
    for url in (
        f"{base}/",
        f"{base}/{daughter.id}/edit",
        f"{base}/{daughter.id}/print",
        f"/patients/{patient.study_id}",
        f"/patients/{patient.study_id}/conversation",
        "/inbox/",
        "/audit/",
        "/messages/?tab=planned",
        "/patients/new",
    ):
        response = nurse.get(url)
        assert response.status_code == 200, url
        assert latin_runs(response.get_data(as_text=True), allowed) == [], url


def test_the_patients_own_number_changes_with_its_contact_and_stays_the_patients(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    own = _contacts(patient)[0]
    url = f"/patients/{patient.study_id}/contacts/{own.id}/edit"
    form = {"relation": "self", "name": "WL", "phone": "13900139077", "locale": "zh",
            "messages": ["reminders", "checkins", "replies"], "position": "0",
            "reason": "new phone"}  # fmt: skip
    assert post(english_nurse, url, form).status_code == 302
    db.session.expire_all()
    assert _enrolled(patient.study_id).phone_e164 == "+8613900139077"
    assert {row.contact_id for row in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.patient_id == patient.id,
                                    OutboxMessage.status == "planned"))} == {own.id}  # fmt: skip
    response = post(english_nurse, url, form | {"relation": "son"})
    assert response.status_code == 400
    assert "stays the patient" in response.get_data(as_text=True)
    response = _add_daughter(english_nurse, patient, relation="self")
    assert response.status_code == 400
    assert "already a contact" in response.get_data(as_text=True)


def test_a_caregivers_opt_out_is_an_inbox_item_about_that_contact_only(
    english_nurse: FlaskClient,
) -> None:
    patient = enrol()
    daughter = _daughter_with_consent(patient)
    receive({"MessageSid": "SMweb00000000000000000000000005", "From": "+86" + DAUGHTER,
             "Body": "退订"}, utcnow())  # fmt: skip
    db.session.expire_all()
    own, daughter = _contacts(patient)
    assert daughter.opted_out_at is not None and own.opted_out_at is None
    page = english_nurse.get("/inbox/").get_data(as_text=True)
    assert "This contact replied with an opt-out keyword" in page
    assert "Sent by: Daughter (王*)" in page
