"""What the patient's self-service pages share (« Qui a accès », masking, alerts, closure): the
routes of a page about the consulted record, whoever consults it (the holder or a representative).

``patient.py`` hands its own ``consulted`` lookup to ``routes``, so these modules never import it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response

from dmp.accounts.service import Account
from dmp.domain.actor import Actor
from dmp.web.common import Ctx, OnError, Space, form_handler, page_handler

Consulted = Callable[[Ctx], tuple[Account, Actor, UUID] | Response]
RecordPage = Callable[[Ctx, Actor, UUID], Response]
RecordForm = Callable[[Ctx, Actor, UUID, dict[str, str]], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def on_record_get(
    space: Space, consulted: Consulted, on_error: OnError | None
) -> Callable[[RecordPage], Endpoint]:
    def wrap(page: RecordPage) -> Endpoint:
        def work(ctx: Ctx) -> Response:
            found = consulted(ctx)
            return found if isinstance(found, Response) else page(ctx, found[1], found[2])

        return page_handler(space, work, on_error)

    return wrap


def on_record_post(
    space: Space, consulted: Consulted, on_error: OnError | None
) -> Callable[[RecordForm], Endpoint]:
    """A form about the record: CSRF first (``form_handler``), then the record, then the work."""

    def wrap(handler: RecordForm) -> Endpoint:
        def work(ctx: Ctx, form: dict[str, str]) -> Response:
            found = consulted(ctx)
            return found if isinstance(found, Response) else handler(ctx, found[1], found[2], form)

        return form_handler(space, work, on_error)

    return wrap
