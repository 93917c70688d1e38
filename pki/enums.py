"""Value sets of the 附件7 form and of the workflow, stored by value."""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    ENTERED = "entered"  # typed in by the 录入员, waiting for the 受理人
    ACCEPTED = "accepted"  # 受理人 agreed, waiting for the 负责人's countersignature
    COUNTERSIGNED = "countersigned"  # acceptance complete, waiting for the 审核员
    RETURNED = "returned"  # 审核员 sent it back for correction
    APPROVED = "approved"  # waiting for the 分发员 to issue
    ISSUED = "issued"  # certificate on the key, not yet handed over
    DISTRIBUTED = "distributed"  # handed over (terminal)
    REJECTED = "rejected"  # 受理意见 不同意, or refused by the reviewer (terminal)
    CANCELLED = "cancelled"  # withdrawn (terminal)
    COMPLETED = (
        "completed"  # a deal that issues nothing (unlock, hold, release, revoke) carried out (terminal)
    )


class Action(StrEnum):
    """What a person does to a request; the state machine and the duty rules speak in these."""

    ENTER = "enter"
    EDIT = "edit"
    ACCEPT = "accept"  # 受理意见 同意
    DISAGREE = "disagree"  # 受理意见 不同意
    COUNTERSIGN = "countersign"
    APPROVE = "approve"
    RETURN = "return"
    REJECT = "reject"
    ISSUE = "issue"
    DISTRIBUTE = "distribute"
    CANCEL = "cancel"
    COMPLETE = "complete"  # carry out a deal that issues nothing (办理: unlock, hold, release, revoke)


class Role(StrEnum):
    ENTRY = "entry"  # 录入员
    ACCEPTOR = "acceptor"  # 受理人
    HEAD = "head"  # 负责人
    REVIEWER = "reviewer"  # 审核员
    DISTRIBUTOR = "distributor"  # 分发员
    OPS = "ops"
    ADMIN = "admin"


class Network(StrEnum):
    EXTRANET = "extranet"  # 政务外网
    INTERNET = "internet"  # 互联网


class AccessType(StrEnum):
    TEST = "test"  # 测试接入
    FORMAL = "formal"  # 正式接入


class CredentialType(StrEnum):
    USCC = "uscc"  # 统一社会信用代码
    INSTITUTION_REGISTRATION = "institution_registration"  # 事业单位法人登记证


class HandlerIdType(StrEnum):
    RESIDENT_ID = "resident_id"  # 身份证
    OTHER = "other"  # 其它


class AccessMode(StrEnum):
    """How a batch of units connects (附件4–6)."""

    BATCH = "batch"  # 分批接入
    ALL = "all"  # 全部接入


ROLE_LABELS_ZH: dict[Role, str] = {
    Role.ENTRY: "录入员",
    Role.ACCEPTOR: "受理人",
    Role.HEAD: "负责人",
    Role.REVIEWER: "审核员",
    Role.DISTRIBUTOR: "分发员",
    Role.OPS: "运维",
    Role.ADMIN: "管理员",
}

STATE_LABELS_ZH: dict[RequestState, str] = {
    RequestState.ENTERED: "已录入",
    RequestState.ACCEPTED: "已受理",
    RequestState.COUNTERSIGNED: "负责人已签",
    RequestState.RETURNED: "退回修改",
    RequestState.APPROVED: "审核通过",
    RequestState.ISSUED: "已签发",
    RequestState.DISTRIBUTED: "已分发",
    RequestState.REJECTED: "已拒绝",
    RequestState.CANCELLED: "已撤销",
    RequestState.COMPLETED: "已办结",
}

# A work queue by the state its requests wait in (pki.services.requests.WORK_STEPS): "待我处理" in words.
QUEUE_LABELS_ZH: dict[RequestState, str] = {
    RequestState.RETURNED: "退回待修改",
    RequestState.ENTERED: "待受理",
    RequestState.ACCEPTED: "待负责人签字",
    RequestState.COUNTERSIGNED: "待审核",
    RequestState.APPROVED: "待签发",
    RequestState.ISSUED: "待分发",
}


class CaRole(StrEnum):
    ROOT = "root"
    ISSUING = "issuing"
    OCSP = "ocsp"  # delegated OCSP responder of one issuing CA


class CertificateStatus(StrEnum):
    """Stored status; 'expired' is derived from not_valid_after at read time."""

    VALID = "valid"
    REVOKED = "revoked"


class RevocationReason(StrEnum):
    """RFC 5280 §5.3.1 CRLReason names accepted for end-entity certificates.

    certificateHold is the reversible hold (冻结), set and lifted through its own operations, never offered
    as a reason to revoke; removeFromCRL (delta CRLs only) and the CA/AA compromise codes are not used.
    """

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    # 冻结: reversible (GM/T 0034 §12.6); set and lifted only by `pkictl hold` / `pkictl release`.
    CERTIFICATE_HOLD = "certificateHold"


# The reasons a revocation may give (a hold has its own operation).
REVOKE_REASONS = tuple(r for r in RevocationReason if r is not RevocationReason.CERTIFICATE_HOLD)

REVOCATION_REASON_LABELS_ZH: dict[RevocationReason, str] = {
    RevocationReason.UNSPECIFIED: "未说明原因",
    RevocationReason.KEY_COMPROMISE: "密钥泄露",
    RevocationReason.AFFILIATION_CHANGED: "单位信息变更",
    RevocationReason.SUPERSEDED: "已被新证书替代",
    RevocationReason.CESSATION_OF_OPERATION: "停止使用",
    RevocationReason.PRIVILEGE_WITHDRAWN: "权限撤销",
    RevocationReason.CERTIFICATE_HOLD: "冻结",
}

# A certificate's effective status (pki.services.certificates.effective_status): stored or derived.
CERTIFICATE_STATUS_LABELS_ZH: dict[str, str] = {
    "valid": "有效",
    "revoked": "已吊销",
    "held": "已冻结",
    "expired": "已过期",
}


class TokenState(StrEnum):
    """Where a USB key (token) stands in the inventory."""

    BLANK = "blank"  # seen, holds none of our certificates
    ISSUED = "issued"  # holds a delivered certificate
    SUSPENDED = "suspended"
    LOST = "lost"
    DESTROYED = "destroyed"  # terminal
    RETURNED = "returned"  # back at the acceptance point
    DEFECTIVE = "defective"  # faulty, sent back to the supplier (terminal)


TOKEN_STATE_LABELS_ZH: dict[TokenState, str] = {
    TokenState.BLANK: "空白",
    TokenState.ISSUED: "已签发",
    TokenState.SUSPENDED: "已暂停",
    TokenState.LOST: "已挂失",
    TokenState.DESTROYED: "已销毁",
    TokenState.RETURNED: "已收回",
    TokenState.DEFECTIVE: "故障退回",
}


# -- connected parties and the cutover (issue 6) ---------------------------------------------------------


class PartyKind(StrEnum):
    PLATFORM = "platform"  # a provincial platform (省级平台)
    UNIT = "unit"  # a key energy-consuming unit (重点用能单位) connecting directly or through a platform


class PartyState(StrEnum):
    """Where a connected party stands; a cutover run sets allowed/refused."""

    REGISTERED = "registered"
    ALLOWED = "allowed"
    REFUSED = "refused"


class EvidenceType(StrEnum):
    """Documents on record for the test → formal rules (cutover.toml names them)."""

    SOFTWARE_TEST = "software-test"  # 第三方软件测试报告
    CLASSIFIED_PROTECTION = "classified-protection"  # 等级保护测评报告
    WAIVER = "waiver"  # 来函说明


class Readiness(StrEnum):
    """A party's readiness for a platform's cutover at an instant."""

    READY = "ready"
    EXPIRING = "expiring"  # valid at the instant, expires before instant + N days
    TEST_ONLY = "test_only"  # only a certificate of a kind the platform does not accept
    REVOKED = "revoked"
    MISSING = "missing"


class CutoverRunState(StrEnum):
    RUNNING = "running"
    DONE = "done"


EVIDENCE_LABELS_ZH: dict[EvidenceType, str] = {
    EvidenceType.SOFTWARE_TEST: "第三方软件测试报告",
    EvidenceType.CLASSIFIED_PROTECTION: "等级保护测评报告",
    EvidenceType.WAIVER: "来函说明",
}

READINESS_LABELS_ZH: dict[Readiness, str] = {
    Readiness.READY: "就绪",
    Readiness.EXPIRING: "即将过期",
    Readiness.TEST_ONLY: "仅有测试证书",
    Readiness.REVOKED: "证书已吊销",
    Readiness.MISSING: "无证书",
}


class Deal(StrEnum):
    """What a unit comes to the desk for (业务类型): every deal is a request of its own type."""

    NEW = "new"  # 新办
    RENEW = "renew"  # 续期: the same key certified again
    REKEY = "rekey"  # 更新: a new key pair
    CHANGE = "change"  # 变更: the unit's details changed
    REPLACE_LOST = "replace-lost"  # 补办 (遗失)
    REPLACE_DAMAGED = "replace-damaged"  # 补办 (损坏)
    UNLOCK = "unlock"  # 解锁: the holder's PIN
    HOLD = "hold"  # 冻结
    RELEASE = "release"  # 解冻
    REVOKE = "revoke"  # 注销


# The deals that end in a new certificate (issued, then distributed); the others are carried out (办理) and
# complete.
ISSUING_DEALS = frozenset(
    {Deal.NEW, Deal.RENEW, Deal.REKEY, Deal.CHANGE, Deal.REPLACE_LOST, Deal.REPLACE_DAMAGED}
)

# The deals whose certificate goes onto a key the desk hands out: their acceptance names the USBKEY model.
NEW_KEY_DEALS = frozenset({Deal.NEW, Deal.CHANGE, Deal.REPLACE_LOST, Deal.REPLACE_DAMAGED})

DEAL_LABELS_ZH: dict[Deal, str] = {
    Deal.NEW: "新办",
    Deal.RENEW: "续期",
    Deal.REKEY: "更新",
    Deal.CHANGE: "变更",
    Deal.REPLACE_LOST: "补办（遗失）",
    Deal.REPLACE_DAMAGED: "补办（损坏）",
    Deal.UNLOCK: "解锁",
    Deal.HOLD: "冻结",
    Deal.RELEASE: "解冻",
    Deal.REVOKE: "注销",
}

# What became of a damaged key the unit brought back (补办（损坏）): the token's inventory state after the deal.
DAMAGED_KEY_FATES: dict[str, str] = {"returned": "交回", "destroyed": "已销毁"}
