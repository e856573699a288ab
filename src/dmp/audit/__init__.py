"""The audit trail (issue 5): one tamper-evident entry per action on a record.

Writing: :func:`append` in the action's own transaction (or :func:`append_committed` for a
refusal, whose transaction rolls back). Checking: :func:`verify`, :func:`make_anchor`.
Reading: :func:`to_audit_event` (FHIR AuditEvent), :func:`history_line` (portal),
:func:`export_ndjson`. Database protection: :func:`install_protection`,
:func:`restrict_role`. See docs/audit.md.
"""

from dmp.audit.actions import ACTIONS, AccessMode, ActionInfo, AuditAction, Outcome, action_info
from dmp.audit.anchor import (
    Anchor,
    AnchorError,
    latest_anchor,
    load_or_create_key,
    make_anchor,
    verification_keys,
)
from dmp.audit.entry import GENESIS, NIL_PATIENT, AuditRecord, StoredEntry, canonical_bytes, entry_hash
from dmp.audit.export import export_ndjson
from dmp.audit.fhir import to_audit_event
from dmp.audit.history import HistoryItem, history, history_line
from dmp.audit.merkle import heads_root, merkle_root
from dmp.audit.protect import (
    install_postgres_protection,
    install_protection,
    install_sqlite_protection,
    restrict_role,
    uninstall_protection,
)
from dmp.audit.snapshot import snapshot
from dmp.audit.trail import (
    AuditWriteError,
    append,
    append_committed,
    count_entries,
    get_entry,
    iter_entries,
    opened,
)
from dmp.audit.verify import Break, BreakKind, VerifyReport, verify

__all__ = [
    "ACTIONS", "AccessMode", "ActionInfo", "Anchor", "AnchorError", "AuditAction", "AuditRecord",
    "AuditWriteError", "Break", "BreakKind", "GENESIS", "HistoryItem", "NIL_PATIENT", "Outcome",
    "StoredEntry", "VerifyReport", "action_info", "append", "append_committed", "canonical_bytes",
    "count_entries", "entry_hash", "export_ndjson", "get_entry", "heads_root", "history", "history_line",
    "install_postgres_protection", "install_protection", "install_sqlite_protection", "iter_entries",
    "opened",
    "latest_anchor", "load_or_create_key", "make_anchor", "merkle_root", "restrict_role", "snapshot",
    "to_audit_event", "uninstall_protection", "verification_keys", "verify",
]
