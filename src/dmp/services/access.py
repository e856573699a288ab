"""The access seam used by the use cases until the policy module fills it (issue 4).

Today: only authenticated health professionals reach the record; deleted documents
are invisible to everyone. Nothing outside these functions decides access.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement

from dmp.domain.actor import Actor, ActorKind
from dmp.domain.document import Availability
from dmp.errors import DmpError
from dmp.store.schema import document


def require_professional(actor: Actor) -> None:
    if actor.kind is not ActorKind.PROFESSIONAL:
        raise DmpError("FORBIDDEN", "réservé aux professionnels de santé authentifiés")


def visible_documents(actor: Actor) -> ColumnElement[bool]:
    """SQL filter of the documents ``actor`` may see in a record they may open."""
    require_professional(actor)
    return document.c.availability != Availability.DELETED.value
