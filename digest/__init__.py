"""digest: weekly email newsletter digests, collected, composed and delivered exactly once.

The public Python API is :class:`Digest` (build one with :func:`make_digest`); its
methods return the dataclasses named in ``__all__``.  Everything else in the package
is internal.  The names load lazily (PEP 562), so ``import digest`` stays cheap: the
database layer, the templates and the web app load only when something uses them.

>>> from digest import make_digest
>>> with make_digest(database_url="sqlite:///digest.db") as d:
...     d.ingest()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "Digest": "digest.api",
    "make_digest": "digest.api",
    "Composition": "digest.api.results",
    "EditionDetail": "digest.api.results",
    "Erasure": "digest.api.results",
    "LastRun": "digest.api.results",
    "ListInfo": "digest.api.results",
    "Person": "digest.api.results",
    "ScheduleInfo": "digest.api.results",
    "SegmentInfo": "digest.api.results",
    "SubscriberPage": "digest.api.results",
    "SubscriberRow": "digest.api.results",
    "Suppressed": "digest.api.results",
    "Waiting": "digest.api.results",
    "RuleCount": "digest.queries",
    "Settings": "digest.config",
    "SAMPLE_DIR": "digest.config",
    "DigestError": "digest.errors",
    "Purpose": "digest.editions",
    "PeriodChoice": "digest.editions",
    "SendOutcome": "digest.sender",
    "SendResult": "digest.sender",
    "Plan": "digest.sender",
    "EditionStats": "digest.stats",
    "IngestReport": "digest.ingest",
    "Collection": "digest.collect",
}

__all__ = [
    "SAMPLE_DIR",
    "Collection",
    "Composition",
    "Digest",
    "DigestError",
    "EditionDetail",
    "EditionStats",
    "Erasure",
    "IngestReport",
    "LastRun",
    "ListInfo",
    "PeriodChoice",
    "Person",
    "Plan",
    "Purpose",
    "RuleCount",
    "ScheduleInfo",
    "SegmentInfo",
    "SendOutcome",
    "SendResult",
    "Settings",
    "SubscriberPage",
    "SubscriberRow",
    "Suppressed",
    "Waiting",
    "__version__",
    "make_digest",
]

if TYPE_CHECKING:
    from digest.api import Digest, make_digest
    from digest.api.results import (
        Composition,
        EditionDetail,
        Erasure,
        LastRun,
        ListInfo,
        Person,
        ScheduleInfo,
        SegmentInfo,
        SubscriberPage,
        SubscriberRow,
        Suppressed,
        Waiting,
    )
    from digest.collect import Collection
    from digest.config import SAMPLE_DIR, Settings
    from digest.editions import PeriodChoice, Purpose
    from digest.errors import DigestError
    from digest.ingest import IngestReport
    from digest.queries import RuleCount
    from digest.sender import Plan, SendOutcome, SendResult
    from digest.stats import EditionStats


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'digest' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
