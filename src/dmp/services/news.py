"""« Quoi de neuf depuis votre dernière visite » (issue 13, the patient's home): the documents
published, the professionals who accessed the record for the first time and the emergency accesses
since the previous login, each through the service that applies the policy: the documents through
the document search (only those the reader may see, the search traced), the trail through
``trail_read`` (the portal's scope, the read traced).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from dmp.audit import HistoryItem
from dmp.domain.actor import Actor
from dmp.services import documents, search, trail_read
from dmp.services.context import Runtime
from dmp.services.trail_read import Professional

DOCUMENTS_LOOKED_AT = 20  # the most recently changed visible documents: the new ones are among them


@dataclass(frozen=True)
class NewDocument:
    id: UUID
    title: str
    type_code: str
    author: str


@dataclass(frozen=True)
class News:
    since: datetime
    documents: list[NewDocument]
    professionals: list[Professional]
    emergencies: list[HistoryItem]

    @property
    def empty(self) -> bool:
        return not (self.documents or self.professionals or self.emergencies)


def _new_documents(
    conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, since: datetime
) -> list[NewDocument]:
    params = [
        ("patient", f"Patient/{patient_id}"),
        ("_sort", "-_lastUpdated"),  # a document published since then was updated since then
        ("_count", str(DOCUMENTS_LOOKED_AT)),
    ]
    page = search.search_documents(conn, rt, actor, params)
    ids = [r.id for r in page.rows]
    fresh = documents.submitted_since(conn, patient_id, ids, since)
    lines = {r.id: r for r in documents.list_lines(conn, patient_id, [i for i in ids if i in fresh])}
    return [
        NewDocument(i, lines[i].title, lines[i].type_code, lines[i].author_name or "")
        for i in ids
        if i in lines
    ]


def since(conn: Connection, rt: Runtime, actor: Actor, patient_id: UUID, when: datetime) -> News:
    trail_news = trail_read.news_since(conn, rt, actor, patient_id, when)
    return News(
        when, _new_documents(conn, rt, actor, patient_id, when), trail_news.professionals,
        trail_news.emergencies,
    )
