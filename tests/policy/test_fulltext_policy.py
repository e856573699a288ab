"""Property: a ``_content`` search finds exactly the documents the policy lets the searcher see that
hold every word — never a masked, invisible, deleted or replaced one, nor any in a record the
searcher is blocked from — on SQLite and PostgreSQL.

The statement is the search's own (``search.document_query``), on random records, actors and
documents (the strategies of test_sql_matches_decide.py), each document indexed from random words
with the real normalisation and keyed hashes.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, insert, select, true
from test_sql_matches_decide import NOW, PID, PROS, _row, actor_st, consents_st, ctx_st, doc_st, prepared  # noqa: F401

from dmp.clinical.text import query_stems, stems
from dmp.domain.actor import Actor, ActorKind
from dmp.policy import Context, DocumentFacts, RecordConsents, RecordFacts
from dmp.policy.rules import document_visible, record_access
from dmp.services import fulltext
from dmp.services.access import Opened
from dmp.services.search import document_query
from dmp.store.schema import document, document_text, document_token

DEK = bytes(range(32))
WORDS = ["Allergies", "pénicilline", "Plavix", "diabète", "diabétique", "VIH", "hémoglobine", "scanner"]
words_st = st.lists(st.sampled_from(WORDS), max_size=5)
query_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=2)


def test_content_results_are_what_the_policy_shows(prepared: Engine) -> None:  # noqa: F811
    engine = prepared
    seen = {"found": 0, "pairs": 0}

    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @example(  # always one match: the patient finds their own document by one of its words
        actor=Actor(ActorKind.PATIENT, str(PID), "Patient"),
        consents=RecordConsents(),
        docs=[(DocumentFacts("11488-4", "10", 0, "approved", None, PROS[0], NOW), ["Plavix", "scanner"])],
        ctx=Context(now=NOW),
        query=["plavix"],
    )
    @given(
        actor=actor_st,
        consents=consents_st,
        docs=st.lists(st.tuples(doc_st, words_st), min_size=1, max_size=8),
        ctx=ctx_st,
        query=query_st,
    )
    def check(
        actor: Actor,
        consents: RecordConsents,
        docs: list[tuple[DocumentFacts, list[str]]],
        ctx: Context,
        query: list[str],
    ) -> None:
        facts = RecordFacts(str(PID), True, consents)
        access = record_access(actor, facts)
        ids = [uuid.uuid4() for _ in docs]
        with engine.begin() as conn:
            for table in (document_token, document_text, document):
                conn.execute(delete(table).where(table.c.patient_id == PID))
            conn.execute(insert(document), [_row(d, i) for (d, _), i in zip(docs, ids, strict=True)])
            for (_, words), i in zip(docs, ids, strict=True):
                rows = fulltext.index_rows(PID, i, DEK, " ".join(words))
                if rows.tokens:
                    conn.execute(insert(document_token), rows.tokens)
            stems_asked = query_stems(" ".join(query))
            q = document_query([Opened(PID, facts, access, ctx, actor)], true(), [], stems_asked, DEK)
            found = set(conn.execute(select(document.c.id).select_from(q.source).where(q.where)).scalars())
        pairs = list(zip(docs, ids, strict=True))
        visible = {i for (d, _), i in pairs if document_visible(access, d, ctx).permitted}
        holding = {i for (_, words), i in pairs if set(stems_asked) <= set(stems(" ".join(words)))}
        assert found <= visible  # nothing hidden is ever found
        assert found == visible & holding  # and everything visible that holds the words is
        seen["found"] += len(found)
        seen["pairs"] += len(docs)

    check()
    assert seen["found"] > 0 and seen["pairs"] >= 200  # hundreds of (actor, document) pairs
