"""A request's history (its audit records) in the clerks' words: actions, detail keys and values in Chinese.

Detail values that are codes (states, fields, attachment kinds, refused operations) are shown by their
labels; the English reason the trail keeps for a refused attempt is for auditors, not shown here.
"""

from __future__ import annotations

import json

from pki.application import FIELD_LABELS
from pki.enums import (
    DEAL_LABELS_ZH,
    REVOCATION_REASON_LABELS_ZH,
    STATE_LABELS_ZH,
    Action,
    Deal,
    RequestState,
    RevocationReason,
)
from pki.lifecycle import ACTION_LABELS_ZH

_HISTORY_LABELS = {
    "request.attach": "上传附件",
    "request.read_attachment": "查看附件",
    "security.denied": "被拒绝的操作",
}
# Operations outside the state machine that are refused on a request (workflow.toml [operations]).
_OPERATION_LABELS = {"attach": "上传附件", "read_attachments": "查看附件"}
_DENIAL_CODES = {"forbidden": "无此权限", "separation_of_duties": "违反职责分离规定"}
_RECORD_KINDS = {"request": "申请", "certificate": "证书"}

# Audit detail keys in the clerks' words; keys not listed are not shown.
_DETAIL_LABELS = {
    "from": "原状态",
    "to": "新状态",
    "reason": "理由",
    "comment": "意见说明",
    "usbkey": "USBKEY 品牌及型号",
    "changed": "修改的栏目",
    "acceptance_voided": "受理作废",
    "serial": "证书序列号",
    "batch": "批次",
    "filename": "文件名",
    "kind": "附件类别",
    "attempted": "尝试的操作",
    "code": "拒绝原因",
    "uscc_confirmed": "已核实的信用代码重名记录",
    "deal": "业务类型",
    "recipient": "领取人",
    "superseded_revoked": "吊销的原证书",
}
_STATE_VALUES = frozenset(s.value for s in RequestState)
_DEAL_VALUES = frozenset(d.value for d in Deal)
_REASON_VALUES = frozenset(r.value for r in RevocationReason)


def history_label(action: str) -> str:
    """An audit action in the clerks' words."""
    name = action.removeprefix("request.")
    try:
        return ACTION_LABELS_ZH[Action(name)]
    except ValueError:
        return _HISTORY_LABELS.get(action, "其他操作")


def history_details(details: str, attachment_kinds: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """An audit record's details (canonical JSON) as label/value pairs for the history table."""
    try:
        data = json.loads(details) if details else {}
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    if "attempted" in data:  # a refused attempt: what was tried and why, without the English reason
        data = {"attempted": data["attempted"], "code": data.get("code")}
    out: list[tuple[str, str]] = []
    for key, label in _DETAIL_LABELS.items():
        value = data.get(key)
        if value in (None, "", [], {}):
            continue
        out.append((label, _shown(key, value, attachment_kinds or {})))
    return out


def _shown(key: str, value: object, attachment_kinds: dict[str, str]) -> str:
    if key in ("from", "to") and value in _STATE_VALUES:
        return STATE_LABELS_ZH[RequestState(str(value))]
    if key == "changed" and isinstance(value, list):
        return "、".join(FIELD_LABELS.get(str(v), str(v)) for v in value)
    if key == "uscc_confirmed" and isinstance(value, list):
        return "、".join(_record_ref(str(v)) for v in value)
    if key == "deal" and value in _DEAL_VALUES:
        return DEAL_LABELS_ZH[Deal(str(value))]
    if key == "reason" and value in _REASON_VALUES:
        return REVOCATION_REASON_LABELS_ZH[RevocationReason(str(value))]
    if key == "kind":
        return attachment_kinds.get(str(value), str(value))
    if key == "attempted":
        try:
            return ACTION_LABELS_ZH[Action(str(value))]
        except ValueError:
            return _OPERATION_LABELS.get(str(value), "其他操作")
    if key == "code":
        return _DENIAL_CODES.get(str(value), "不允许")
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def _record_ref(ref: str) -> str:
    """``request:12`` -> 申请 12."""
    kind, _, ident = ref.partition(":")
    return f"{_RECORD_KINDS.get(kind, kind)} {ident}"
