"""How the 附件7 fields are laid out on screen: grouped and ordered as on the paper form.

Only layout lives here (groups, widget kinds); the labels are pki.application.FIELD_LABELS and CHOICE_LABELS.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Group:
    title: str
    fields: tuple[str, ...]
    optional: bool = False  # shown folded: only bulk unit lists carry these


FORM_GROUPS: tuple[Group, ...] = (
    Group(
        "申请单位",
        (
            "unit_name",
            "legal_representative",
            "unit_phone",
            "unit_fax",
            "province",
            "address",
            "county",
            "township",
            "email",
            "postal_address",
            "postal_code",
        ),
    ),
    Group("经办人", ("handler_name", "handler_contact", "handler_id_type", "handler_id_number")),
    Group("申请单位有效证件", ("credential_type", "credential_number")),
    Group(
        "申请内容",
        (
            "network",
            "access_type",
            "target_system",
            "validity_months",
            "agreement_accepted",
            "application_date",
        ),
    ),
    Group(
        "单位名单信息（附件4–6，选填）",
        ("industry", "location", "ownership_type", "energy_consumption", "main_energy_types"),
        optional=True,
    ),
)

# Widget per field; text by default.
SELECTS = frozenset(
    {"handler_id_type", "credential_type", "network", "access_type", "province", "validity_months"}
)
RADIOS = frozenset({"agreement_accepted"})
DATES = frozenset({"application_date"})

FORM_FIELDS: tuple[str, ...] = tuple(f for g in FORM_GROUPS for f in g.fields)
