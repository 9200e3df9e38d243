"""Where templates live: an override folder (``DIGEST_TEMPLATES``) first, then the built-ins."""

from __future__ import annotations

from pathlib import Path

import digest
from digest.errors import ConfigError, TemplateError


def builtin_templates_dir() -> Path:
    """The built-in templates: ``digest/_templates`` in a wheel, ``templates/`` in a checkout."""
    package = Path(digest.__file__).resolve().parent
    for candidate in (package / "_templates", package.parent / "templates"):
        if (candidate / "base.mjml.j2").is_file():
            return candidate
    raise TemplateError(
        f"built-in templates not found in {package / '_templates'} or "
        f"{package.parent / 'templates'}; reinstall digest"
    )


def template_dirs(override: Path | None) -> list[Path]:
    """The folders searched, in order: the override folder (if any), then the built-ins."""
    dirs = []
    if override is not None and str(override):
        if not override.is_dir():
            raise ConfigError(
                f"DIGEST_TEMPLATES: {override} is not a folder; create it, or unset "
                "DIGEST_TEMPLATES to use the built-in templates"
            )
        dirs.append(override)
    dirs.append(builtin_templates_dir())
    return dirs


__all__ = ["builtin_templates_dir", "template_dirs"]
