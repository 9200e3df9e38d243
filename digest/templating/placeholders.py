"""No printed value can spell a personalisation placeholder (see :mod:`digest.personalize`).

Every value a template prints with ``{{ … }}`` that is not already ``Markup``
goes through :func:`finalize`, which breaks up any ``~~`` with a word joiner.
"""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

_TILDES = re.compile(r"~(?=~)")


def neutralise(value: str) -> str:
    """Break every ``~~`` with a word joiner, so no placeholder can be spelled."""
    if "~~" not in value:  # nearly always: skip the regular expression
        return value
    return _TILDES.sub("~\u2060", value)


def finalize(value: Any) -> Any:
    """The environment's ``finalize``: None prints as nothing, text is neutralised."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return neutralise(value)
    return value


__all__ = ["finalize", "neutralise"]
