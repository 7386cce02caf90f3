"""contacts and consents: each patient's phone becomes a 'self' contact

Revision ID: 0005_contacts
Revises: 0004_reply_invitations
Create Date: 2026-12-07 15:00:00

Data: every patient gets a ``self`` contact with the patient's number, language, opt-out and
number status; a patient who had SMS consent gets a consent "recorded before contacts existed"
(method ``before_contacts``, ``needs_confirmation``) for a nurse to confirm.
"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0005_contacts"
down_revision = "0004_reply_invitations"
branch_labels = None
depends_on = None

ALL_MESSAGES = ["reminders", "checkins", "replies"]
ALL_SCOPES = ["sms_reminders", "checkins", "sensitive_health"]
LEGACY_NOTE = "recorded before contacts existed"


def upgrade():
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("opted_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("phone_status", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_contact_patient_id_patient")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact")),
        sa.UniqueConstraint(
            "patient_id", "phone_e164", name=op.f("uq_contact_patient_id_phone_e164")
        ),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_phone_e164"), ["phone_e164"], unique=False)
    op.create_table(
        "contact_consent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("witness", sa.String(length=80), nullable=True),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("needs_confirmation", sa.Boolean(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=120), nullable=True),
        sa.Column("withdrawal_method", sa.String(length=16), nullable=True),
        sa.Column("withdrawal_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contact.id"], name=op.f("fk_contact_consent_contact_id_contact")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_consent")),
    )
    with op.batch_alter_table("contact_consent", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_consent_contact_id"), ["contact_id"], unique=False
        )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_message_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_message_contact_id_contact"), "contact", ["contact_id"], ["id"]
        )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_inbound_message_contact_id_contact"), "contact", ["contact_id"], ["id"]
        )
    _patients_to_self_contacts()


def _patients_to_self_contacts():
    """Each patient's phone becomes a 'self' contact; SMS consent becomes a consent to confirm."""
    bind = op.get_bind()
    patient = sa.table(
        "patient",
        sa.column("id", sa.Integer),
        sa.column("initials", sa.String),
        sa.column("phone_e164", sa.String),
        sa.column("locale", sa.String),
        sa.column("sms_consent", sa.Boolean),
        sa.column("sms_consent_date", sa.Date),
        sa.column("sms_opted_out_at", sa.DateTime(timezone=True)),
        sa.column("phone_status", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    contact = sa.table(
        "contact",
        sa.column("id", sa.Integer),
        sa.column("patient_id", sa.Integer),
        sa.column("relation", sa.String),
        sa.column("name", sa.String),
        sa.column("phone_e164", sa.String),
        sa.column("locale", sa.String),
        sa.column("messages", sa.JSON),
        sa.column("position", sa.Integer),
        sa.column("opted_out_at", sa.DateTime(timezone=True)),
        sa.column("phone_status", sa.String),
        sa.column("active", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    consent = sa.table(
        "contact_consent",
        sa.column("contact_id", sa.Integer),
        sa.column("recorded_on", sa.Date),
        sa.column("method", sa.String),
        sa.column("scopes", sa.JSON),
        sa.column("recorded_by", sa.String),
        sa.column("note", sa.Text),
        sa.column("needs_confirmation", sa.Boolean),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    for row in bind.execute(sa.select(patient).order_by(patient.c.id)).mappings().all():
        contact_id = bind.execute(
            sa.insert(contact)
            .values(
                patient_id=row["id"],
                relation="self",
                name=row["initials"] or "",
                phone_e164=row["phone_e164"],
                locale=row["locale"] or "zh",
                messages=ALL_MESSAGES,
                position=0,
                opted_out_at=row["sms_opted_out_at"],
                phone_status=row["phone_status"] or "ok",
                active=True,
                created_at=row["created_at"],
                updated_at=row["created_at"],
            )
            .returning(contact.c.id)
        ).scalar_one()
        if not row["sms_consent"]:
            continue
        created = row["created_at"]
        recorded_on = row["sms_consent_date"] or (created.date() if created else None)
        bind.execute(
            sa.insert(consent).values(
                contact_id=contact_id,
                recorded_on=recorded_on,
                method="before_contacts",
                scopes=ALL_SCOPES,
                recorded_by="migration:0005_contacts",
                note=LEGACY_NOTE,
                needs_confirmation=True,
                created_at=created,
            )
        )


def downgrade():
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_inbound_message_contact_id_contact"), type_="foreignkey"
        )
        batch_op.drop_column("contact_id")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_outbox_message_contact_id_contact"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_outbox_message_contact_id"))
        batch_op.drop_column("contact_id")
    with op.batch_alter_table("contact_consent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_consent_contact_id"))
    op.drop_table("contact_consent")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_phone_e164"))
        batch_op.drop_index(batch_op.f("ix_contact_patient_id"))
    op.drop_table("contact")
