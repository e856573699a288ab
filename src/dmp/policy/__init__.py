"""Access policy: the one decision point (issue 4).

``decide`` (rules.py) is pure and deny-by-default. The same READ rules compiled to SQL
(``visible_condition``) live one layer up, in ``dmp/services/policy_sql.py``, because they need
the store's tables: this package imports only ``dmp.domain`` and ``dmp.errors`` (ADR 0001).
The profession x type matrix is data (matrix.json).
"""

from dmp.policy.model import (
    AccessMode,
    Action,
    ConsentFacts,
    Context,
    Decision,
    DocumentFacts,
    Effect,
    EmergencyConsents,
    Obligation,
    RecordConsents,
    RecordFacts,
    Transparency,
)
from dmp.policy.rules import (
    AUDIT_SCOPE,
    MAJORITY_UNCONFIRMED,
    ConsentsView,
    RecordAccess,
    TrailAccess,
    awaiting_announcement,
    closes_record,
    consents_view,
    decide,
    document_visible,
    health_professional,
    learns_record_exists,
    majority_unconfirmed,
    may_break_glass,
    may_regulate,
    read_patient,
    record_access,
    trail_access,
    trail_entry_visible,
)

__all__ = [
    "AUDIT_SCOPE",
    "MAJORITY_UNCONFIRMED",
    "AccessMode",
    "Action",
    "ConsentFacts",
    "Context",
    "Decision",
    "DocumentFacts",
    "Effect",
    "EmergencyConsents",
    "Obligation",
    "RecordAccess",
    "RecordConsents",
    "RecordFacts",
    "TrailAccess",
    "Transparency",
    "ConsentsView",
    "awaiting_announcement",
    "closes_record",
    "consents_view",
    "decide",
    "health_professional",
    "majority_unconfirmed",
    "may_break_glass",
    "may_regulate",
    "document_visible",
    "learns_record_exists",
    "read_patient",
    "record_access",
    "trail_access",
    "trail_entry_visible",
]
