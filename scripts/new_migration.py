"""Write a new Alembic revision from the difference between the models and head.

Usage: python scripts/new_migration.py "add thing to table"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from digest import db


def main(message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'autogen.db'}")
        if db.current_revision(engine) is None and any((db.MIGRATIONS / "versions").glob("*.py")):
            db.upgrade(engine)
        with engine.connect() as conn:
            cfg = db._alembic_config()
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True)
            conn.commit()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or "change")
