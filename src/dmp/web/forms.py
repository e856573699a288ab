"""Small readers of the portals' form fields, shared by every form."""

from __future__ import annotations

import re
from datetime import date

_FR_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def french_date(raw: str) -> date | None:
    """A date typed as jj/mm/aaaa (or aaaa-mm-jj, what a date input sends); None if it is none."""
    found = _FR_DATE.fullmatch(raw.strip())
    try:
        if found:
            return date(int(found.group(3)), int(found.group(2)), int(found.group(1)))
        return date.fromisoformat(raw.strip())
    except ValueError:
        return None
