"""The one exception the store raises, and URL masking so messages never leak passwords."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url

# the store's one exception, defined with the exception family (dmtwatch.errors)
from dmtwatch.errors import StoreError as StoreError

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str) -> str:
    """The URL as the user gave it, with any password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: mask by pattern rather than fail while reporting
        return _PASSWORD.sub(r"\1***@", url)


def scrub(text: str, url: str) -> str:
    """Remove the URL's password from a driver message, should a driver echo it."""
    try:
        password = make_url(url).password
    except Exception:
        password = None
    return text.replace(password, "***") if password else text
