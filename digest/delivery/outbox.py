"""The outbox backend: one ``.eml`` file per recipient, exactly what would be sent."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Self

from digest.config import Settings
from digest.delivery.base import Backend, FatalError, RecipientResult
from digest.delivery.message import Post, UnsendableAddress, build_mime


class OutboxBackend(Backend):
    name = "outbox"
    max_recipients = 1
    batch_size = 100
    delivers_mail = False

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """From ``DIGEST_OUTBOX_DIR``."""
        return cls(settings.outbox_dir)

    def open(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FatalError(
                f"cannot create the outbox folder {self.directory}: {exc.strerror}; "
                "set DIGEST_OUTBOX_DIR to a writable folder"
            ) from None

    def path_for(self, post: Post, index: int) -> Path:
        env = post.envelope
        rcpt = post.recipients[index]
        who = rcpt.subscriber_id if rcpt.subscriber_id is not None else _slug(rcpt.email)
        prefix = "test-" if env.test else ""
        folder = self.directory / f"{env.newsletter}-{_slug(env.period)}"
        return folder / f"{prefix}{who}-{env.variant_key}.eml"

    def send(self, post: Post) -> list[RecipientResult]:
        results = []
        for i, rcpt in enumerate(post.recipients):
            try:
                msg = build_mime(post.envelope, rcpt)
            except UnsendableAddress as exc:
                results.append(RecipientResult(rcpt.delivery_id, ok=False, error=str(exc)))
                continue
            path = self.path_for(post, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crash never leaves a half-written message.
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                fh.write(msg.as_bytes())
            os.replace(tmp, path)
            results.append(
                RecipientResult(
                    rcpt.delivery_id, ok=True, provider_id=str(path), message_id=msg["Message-ID"]
                )
            )
        return results


def _slug(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", value)
