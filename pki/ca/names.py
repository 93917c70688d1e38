"""Distinguished names in the clerks' words: each attribute by its Chinese name, never a raw OID.

The labels are the ones Chinese certificate viewers use; an attribute not listed shows as 其他属性 with its
value, so no page ever prints a dotted OID.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

SUBJECT_ATTRIBUTE_LABELS_ZH: dict[x509.ObjectIdentifier, str] = {
    NameOID.COUNTRY_NAME: "国家/地区",
    NameOID.STATE_OR_PROVINCE_NAME: "省份",
    NameOID.LOCALITY_NAME: "城市",
    NameOID.STREET_ADDRESS: "街道地址",
    NameOID.POSTAL_CODE: "邮编",
    NameOID.ORGANIZATION_NAME: "组织",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "部门",
    NameOID.ORGANIZATION_IDENTIFIER: "组织机构标识",
    NameOID.COMMON_NAME: "通用名称",
    NameOID.SERIAL_NUMBER: "序列号",
    NameOID.EMAIL_ADDRESS: "电子邮件",
    NameOID.TITLE: "职务",
    NameOID.SURNAME: "姓",
    NameOID.GIVEN_NAME: "名",
    NameOID.BUSINESS_CATEGORY: "业务类别",
    NameOID.DOMAIN_COMPONENT: "域名组件",
    NameOID.USER_ID: "用户标识",
}
OTHER_ATTRIBUTE_ZH = "其他属性"
COUNTRY_NAMES_ZH = {"CN": "中国"}


def name_fields(name: x509.Name) -> list[tuple[str, str]]:
    """``name``'s attributes in order, each as (Chinese label, value)."""
    out: list[tuple[str, str]] = []
    for attribute in name:
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        if attribute.oid == NameOID.COUNTRY_NAME and value in COUNTRY_NAMES_ZH:
            value = COUNTRY_NAMES_ZH[value]
        out.append((SUBJECT_ATTRIBUTE_LABELS_ZH.get(attribute.oid, OTHER_ATTRIBUTE_ZH), value))
    return out


def certificate_names(der: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The subject's and the issuer's fields of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    return name_fields(cert.subject), name_fields(cert.issuer)
