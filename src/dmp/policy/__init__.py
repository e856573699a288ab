"""Access policy: the one decision point and its SQL compilation (issue 4).

``decide`` (rules.py) is pure and deny-by-default; ``visible_condition`` (sqlfilter.py)
is the same READ rules as SQL. The profession x type matrix is data (matrix.json).
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
    RecordAccess,
    TrailAccess,
    awaiting_announcement,
    decide,
    document_visible,
    learns_record_exists,
    record_access,
    trail_access,
    trail_entry_visible,
)

__all__ = [
    "AUDIT_SCOPE",
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
    "awaiting_announcement",
    "decide",
    "document_visible",
    "learns_record_exists",
    "record_access",
    "trail_access",
    "trail_entry_visible",
]
