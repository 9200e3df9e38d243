"""Wiring shared by the CLI, the web app and the scheduler: settings, config, database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from digest import db
from digest.config import DigestConfig, Settings, load_config, load_settings


class App:
    """Lazily built pieces of one running digest: nothing is read until it is needed."""

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._settings = settings
        self._overrides = overrides

    @cached_property
    def settings(self) -> Settings:
        return self._settings or load_settings(**self._overrides)

    @cached_property
    def config(self) -> DigestConfig:
        return load_config(self.settings.config_path)

    @cached_property
    def engine(self) -> Engine:
        engine = db.make_engine(self.settings.database_url)
        db.ensure_schema(engine)
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The session factory: ``app.sessions()`` is a session with no transaction begun
        (for code that commits in steps of its own, like the send loop)."""
        return db.session_factory(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: a session that commits on success and rolls back on any error
        (``with app.transaction() as session: …``)."""
        with self.sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
