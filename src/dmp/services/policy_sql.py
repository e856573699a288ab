"""The READ rules of ``rules.document_visible`` compiled into one SQL condition.

Searches and counts filter in the database (never load-then-filter). The record-level
part is decided once in Python (``record_access``); what remains depends only on the
document's columns. ``tests/policy/test_sql_matches_decide.py`` checks, on random
records, actors and documents, that this condition selects exactly the documents
``document_visible`` permits, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import ColumnElement, and_, false, not_, or_, true

from dmp.domain.document import DmpFlag
from dmp.policy.matrix import TypeRule
from dmp.policy.model import Context
from dmp.policy.rules import RecordAccess, reads_occupational
from dmp.store.schema import document

# The parts that do not depend on who asks are built once: SQLAlchemy expressions are immutable
# and can be shared between statements, and building them cost ~0.15 ms on every search.


@cache
def _flag(flag: DmpFlag) -> ColumnElement[bool]:
    return document.c.flags.op("&")(int(flag)) != 0


@cache
def _status_in(statuses: tuple[str, ...]) -> ColumnElement[bool]:
    return document.c.availability.in_(statuses)


@cache
def _type_ok(rule: TypeRule) -> ColumnElement[bool]:
    d = document.c
    types = sorted(rule.types)
    if rule.all_except:
        return d.type_code.not_in(types) if types else true()
    return d.type_code.in_(types) if types else false()


@cache
def _not_masked() -> ColumnElement[bool]:
    return not_(_flag(DmpFlag.MASQUE_PS))


def visible_condition(access: RecordAccess, ctx: Context) -> ColumnElement[bool]:
    d = document.c
    if not access.decision.permitted:
        return false()
    statuses = ["approved"]
    if access.view in ("patient", "representative"):
        statuses.append("archived")
    if ctx.history:
        statuses.append("deprecated")
    status_ok = _status_in(tuple(statuses))
    if access.view in ("patient", "representative"):
        conds = [status_ok, not_(_flag(DmpFlag.INVISIBLE_PATIENT))]  # AC-10: until lifted
        if access.view == "representative":
            conds.append(not_(_flag(DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX)))
        return and_(*conds)
    type_ok = _type_ok(access.professional_rule())
    masked_ok = true() if access.masked_visible else _not_masked()
    own = or_(d.author_id == access.actor_id, d.published_by == access.actor_id)
    return and_(status_ok, or_(own, and_(_occupational_ok(access), type_ok, masked_ok)))


def _occupational_ok(access: RecordAccess) -> ColumnElement[bool]:
    """AC-17: occupational medicine's deposits only for their readers (policy.rules.reads_occupational)."""
    return true() if reads_occupational(access) else not_(document.c.occupational)


def hidden_by_mask_condition(access: RecordAccess, ctx: Context) -> ColumnElement[bool]:
    """Documents the professional would see but for MASQUE_PS (for the transparency modes)."""
    d = document.c
    if access.view != "professional" or access.masked_visible or not access.decision.permitted:
        return false()
    read_rule = access.professional_rule()
    statuses = ("approved", "deprecated") if ctx.history else ("approved",)
    not_own = and_(
        or_(d.author_id.is_(None), d.author_id != access.actor_id), d.published_by != access.actor_id
    )
    return and_(
        _status_in(statuses),
        not_own,
        _occupational_ok(access),
        _type_ok(read_rule),
        _flag(DmpFlag.MASQUE_PS),
    )


def trail_hidden_condition(access: RecordAccess, ctx: Context) -> ColumnElement[bool]:
    """The documents whose trail entries ``rules.trail_entry_visible`` hides from this reader
    (the patient or a representative reading the whole trail), as SQL on ``document``."""
    if not access.decision.permitted or access.view not in ("patient", "representative"):
        return false()
    hidden = _flag(DmpFlag.INVISIBLE_PATIENT)  # AC-10: until lifted, however old
    if access.view == "representative":
        return or_(hidden, _flag(DmpFlag.INVISIBLE_REPRESENTANTS_LEGAUX))
    return hidden
