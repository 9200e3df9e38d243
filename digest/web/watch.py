"""What the live preview watches: the templates and ``digest.toml``.

:func:`signature` is a short hash of every watched file's path, size and
modification time; it changes when a file is saved, added or removed.  The
preview's Server-Sent Events stream polls it (cheap: a few dozen ``stat`` calls)
and tells the open page to reload when it changes.

:class:`LiveConfig` re-reads ``digest.toml`` whenever it changes on disk, so the web
app always shows the newsletters as configured now (the CLI reads it once per run).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path

from digest.config import DigestConfig, Settings, load_config
from digest.templating import template_dirs


def watched_files(settings: Settings) -> list[Path]:
    """Every template (override folder first, then the built-ins) and the config file."""
    files: list[Path] = []
    try:
        dirs = template_dirs(settings.templates)
    except Exception:  # a missing override folder: watch the rest, the page shows the error
        dirs = []
    for folder in dirs:
        files.extend(sorted(p for p in folder.rglob("*") if p.is_file()))
    with contextlib.suppress(Exception):  # DIGEST_CONFIG may point nowhere (yet)
        files.append(settings.config_path)
    return files


def signature(settings: Settings) -> str:
    """A short hash that changes whenever a watched file is saved, added or removed."""
    h = hashlib.sha256()
    for path in watched_files(settings):
        try:
            st = path.stat()
        except OSError:
            continue
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class LiveConfig:
    """``digest.toml``, re-read when its size or modification time changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stamp: tuple[str, int, int] | None = None
        self._config: DigestConfig | None = None

    def get(self) -> DigestConfig:
        """The current configuration; a broken file raises its ConfigError every time."""
        path = self.settings.config_path
        try:
            st = path.stat()
            stamp = (str(path), st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = (str(path), -1, -1)
        with self._lock:
            if self._config is None or stamp != self._stamp:
                self._config = load_config(path)
                self._stamp = stamp
            return self._config


__all__ = ["LiveConfig", "signature", "watched_files"]
