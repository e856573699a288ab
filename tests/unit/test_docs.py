"""Documentation that states facts is generated from the code and checked here."""

from __future__ import annotations

import pytest

from dmp.devtools.docs import PAGES, ROOT
from dmp.errors import CATALOGUE, DmpError


@pytest.mark.parametrize("rel", sorted(PAGES))
def test_generated_page_is_up_to_date(rel: str) -> None:
    on_disk = (ROOT / rel).read_text(encoding="utf-8")
    assert on_disk == PAGES[rel](), f"{rel} is stale: run python -m dmp.devtools.docs"


def test_every_code_renders_a_french_message() -> None:
    for code, kind in CATALOGUE.items():
        err = DmpError(code, "détail")
        assert err.status == kind.status
        assert "{detail}" not in err.message
        assert err.message[0].isupper()
