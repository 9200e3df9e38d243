"""An in-memory backend for tests and dry runs: keeps what it was given, fails on cue.

``MemoryBackend.script`` is a shared queue of behaviours consumed one per post:
an exception instance to raise, or a callable ``(post) -> list[RecipientResult]``
(to fail some recipients, or to act mid-send).  When the queue is empty every
post succeeds.  ``MemoryBackend.sent`` collects every delivered message as
``(address, subject, text, html, headers)``, fully personalised.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Self

from digest.config import Settings
from digest.delivery.base import Backend, RecipientResult
from digest.delivery.message import Post, build_mime
from digest.errors import ConfigError

Behaviour = BaseException | Callable[[Post], list[RecipientResult]]


@dataclass
class MemoryMailbox:
    sent: list[dict[str, str]] = field(default_factory=list)
    posts: int = 0
    script: deque[Behaviour] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemoryBackend(Backend):
    name = "memory"
    max_recipients: ClassVar[int] = 1000
    batch_size: ClassVar[int] = 1000
    delivers_mail: ClassVar[bool] = False

    def __init__(self, mailbox: MemoryMailbox, max_recipients: int | None = None) -> None:
        self.mailbox = mailbox
        if max_recipients is not None:
            self.max_recipients = max_recipients  # type: ignore[misc]

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        raise ConfigError(
            "the memory backend is for tests: build it with a MemoryMailbox, not from settings"
        )

    def send(self, post: Post) -> list[RecipientResult]:
        with self.mailbox.lock:
            self.mailbox.posts += 1
            behaviour = self.mailbox.script.popleft() if self.mailbox.script else None
        if isinstance(behaviour, BaseException):
            raise behaviour
        if behaviour is not None:
            return behaviour(post)
        return self.deliver(post)

    def deliver(self, post: Post) -> list[RecipientResult]:
        """Accept every recipient of ``post`` (scripts call this to pass a post through)."""
        results = []
        for rcpt in post.recipients:
            msg = build_mime(post.envelope, rcpt)
            text_part, html_part = msg.get_body(("plain",)), msg.get_body(("html",))
            assert text_part is not None and html_part is not None
            record = {
                "to": rcpt.email,
                "subject": str(msg["Subject"]),
                "text": text_part.get_content(),
                "html": html_part.get_content(),
                "message_id": str(msg["Message-ID"]),
                "list_unsubscribe": str(msg["List-Unsubscribe"]),
            }
            with self.mailbox.lock:
                self.mailbox.sent.append(record)
            results.append(
                RecipientResult(rcpt.delivery_id, ok=True, message_id=record["message_id"])
            )
        return results
