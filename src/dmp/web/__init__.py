"""The web portal: the patients' space (``/``), the professionals' space (``/pro``) and the
OAuth2 authorization endpoint for patient applications. Starlette + Jinja2, French pages.

``routes()`` is mounted by ``dmp.api.app.create_app``; ``build_state`` makes the state the
pages share (``app.state.web``). See docs/accounts.md.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dmp.web.common import WebState, build_state

__all__ = ["WebState", "build_state", "routes"]


async def stylesheet(_request: Request) -> Response:
    css = resources.files("dmp.web").joinpath("static", "dmp.css").read_bytes()
    return Response(
        css,
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def routes() -> list[BaseRoute]:
    from dmp.web import oauth, patient, pro

    return [
        Route("/static/dmp.css", stylesheet, methods=["GET"]),
        *oauth.routes(),
        *pro.routes(),
        *patient.routes(),
    ]
