"""Settings and digest.toml: defaults, overrides, and one clear error per mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from digest.compose import config_warnings
from digest.config import (
    SAMPLE_CONFIG,
    Settings,
    category_key,
    load_config,
    load_settings,
)
from digest.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def _example_keys() -> set[str]:
    keys = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if m:
            keys.add(m.group(1))
    return keys


def _settings_keys() -> set[str]:
    keys = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None:
            keys.add(str(alias.choices[0]) if hasattr(alias, "choices") else str(alias))
        else:
            keys.add(f"DIGEST_{name.upper()}")
    return keys


def _keys_read_in_code() -> set[str]:
    pattern = re.compile(r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z][A-Z0-9_]+)""")
    found = set()
    for pkg in ("digest", "subscribers"):
        for path in (ROOT / pkg).rglob("*.py"):
            found.update(pattern.findall(path.read_text()))
    return found


def test_env_example_lists_every_setting() -> None:
    missing = _settings_keys() - _example_keys()
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_lists_every_key_read_directly() -> None:
    missing = _keys_read_in_code() - _example_keys()
    assert not missing, f"code reads {sorted(missing)} but .env.example does not list them"


def test_env_example_has_no_stale_keys() -> None:
    stale = _example_keys() - _settings_keys() - _keys_read_in_code()
    assert not stale, f".env.example lists keys nothing reads: {sorted(stale)}"


def test_every_example_line_has_a_comment() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z]", line):
            assert i > 0 and lines[i - 1].startswith("#"), f"no comment above {line!r}"


def test_environment_overrides_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        "DIGEST_DATABASE_URL=sqlite:///from-file.db\nDIGEST_BACKEND=smtp\nSENDGRID_API_KEY=SG.x\n"
    )
    monkeypatch.setenv("DIGEST_BACKEND", "sendgrid")
    s = load_settings()
    assert s.database_url == "sqlite:///from-file.db"
    assert s.backend == "sendgrid"
    assert s.sendgrid_api_key is not None
    assert s.sendgrid_api_key.get_secret_value() == "SG.x"


def test_defaults() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///digest.db"
    assert s.backend is None  # unset: see digest.delivery.registry.resolve_backend
    assert s.config_path == SAMPLE_CONFIG  # no ./digest.toml here


def test_local_digest_toml_wins(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text("")
    assert load_settings().config_path == Path("digest.toml")


def test_missing_config_file_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_CONFIG", "nowhere/digest.toml")
    with pytest.raises(ConfigError, match=r"nowhere/digest.toml.*does not exist"):
        _ = load_settings().config_path


def test_bad_setting_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # (an unknown DIGEST_BACKEND is the registry's to refuse: test_delivery_registry.py)
    monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "-1")
    with pytest.raises(ConfigError, match=r"^settings: DIGEST_HTTP_TIMEOUT: .*greater than 0"):
        load_settings()


MINIMAL = """
[newsletters.weekly]
title = "Weekly"
list = "weekly"
sender = "News <news@example.org>"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "digest.toml"
    p.write_text(text)
    return p


def test_minimal_config_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL))
    nl = cfg.newsletter("weekly")
    assert nl.list_name == "weekly"
    assert nl.timezone == "UTC"
    assert nl.window == "week"
    assert nl.locale == "en_GB"
    assert nl.sender_address == "news@example.org"


def test_sample_config_loads() -> None:
    cfg = load_config(SAMPLE_CONFIG)
    nl = cfg.newsletter("weekly")
    assert nl.list_name == "weekly"
    assert "Data and security" in nl.category_names
    assert nl.normalise_category("Data & Security") == "Data and security"
    for _, src in cfg.all_sources():
        ref = cfg.resolve_source(src)
        assert ref.startswith("http") or Path(ref).exists(), ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + 'timezone = "Europe/Lndon"\n',
            r"newsletters\.weekly\.timezone: unknown timezone",
        ),
        (MINIMAL + 'locale = "xx_YY"\n', r"newsletters\.weekly\.locale: unknown locale"),
        (MINIMAL + 'window = "fortnight"\n', r"newsletters\.weekly\.window: 'fortnight'"),
        (
            MINIMAL + 'window = "3650d"\n',
            r"newsletters\.weekly\.window: '3650d' is not a window; use 'week' or a number of "
            r"days between 1d and 999d",
        ),
        (MINIMAL + "max_per_category = 0\n", r"newsletters\.weekly\.max_per_category: "),
        (MINIMAL + 'colour = "red"\n', r"newsletters\.weekly\.colour: unknown key"),
        (
            MINIMAL + 'approval = "requried"\n',
            r"newsletters\.weekly\.approval: 'requried' is not one of 'auto', 'required'",
        ),
        (
            MINIMAL + 'track_clicks = "sometimes"\n',
            r"newsletters\.weekly\.track_clicks: 'sometimes' is not true or false; write "
            r"track_clicks = true or false, without quotes",
        ),
        (MINIMAL.replace('list = "weekly"\n', ""), r"newsletters\.weekly\.list: required"),
        (MINIMAL.replace("news@example.org", "nobody"), r"newsletters\.weekly\.sender: "),
        ("[newsletters.weekly\n", r"not valid TOML"),
        ("", r"no newsletters defined"),
        ("[other]\nx = 1\n", r"unknown top-level key 'other'"),
        (MINIMAL.replace("[newsletters.weekly]", "[newsletters.Weekly]"), r"names use lowercase"),
        (
            MINIMAL
            + '[[newsletters.weekly.categories]]\nname = "A"\naliases = ["x"]\n'
            + '[[newsletters.weekly.categories]]\nname = "B"\naliases = ["X"]\n',
            r"label 'X' is used by both 'A' and 'B'",
        ),
        (
            MINIMAL
            + '[[newsletters.weekly.categories]]\nname = "Transport"\n'
            + '[[newsletters.weekly.categories]]\nname = "Events"\n'
            + '[[newsletters.weekly.categories]]\nname = "Transport"\n',
            r"newsletters\.weekly: categories 1 and 3 are both named 'Transport'; give each "
            r"category its own name \(a second spelling of one belongs in its aliases\)",
        ),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert re.search(expected, message), message
    assert info.value.exit_code == 2


def test_a_locale_with_no_interface_translation_is_a_warning(tmp_path: Path) -> None:
    """Accepted (dates follow it), but the emails' words stay English: say so."""
    text = (
        MINIMAL + 'locale = "sk_SK"\n' + MINIMAL.replace("weekly", "daily") + 'locale = "de_AT"\n'
    )
    path = _write(tmp_path, text)
    cfg = load_config(path)
    assert cfg.newsletter("weekly").locale == "sk_SK"
    expected = (
        f"{path}: newsletters.weekly.locale: no interface translation for 'sk_SK' "
        "(translations: de, en, es, fr, nl); dates are in Slovak, interface words in English"
    )
    assert config_warnings(cfg, cfg.newsletter("weekly")) == [expected]
    assert config_warnings(cfg, cfg.newsletter("daily")) == []


def test_unknown_newsletter_lists_known(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"no newsletter called 'daily' \(defined: weekly\)"):
        cfg.newsletter("daily")


def test_category_key_folds_case_spacing_and_ampersand() -> None:
    assert category_key("Data & Security") == category_key("data and  security")
    assert category_key("Data & Security") != category_key("Data Security")


def test_relative_sources_resolve_against_config_folder(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        MINIMAL + 'sources = ["feeds/a.rss", "https://example.org/feed", "file:///abs/x.xml"]\n',
    )
    cfg = load_config(path)
    refs = [cfg.resolve_source(s) for _, s in cfg.all_sources()]
    assert refs == [
        str((tmp_path / "feeds/a.rss").resolve()),
        "https://example.org/feed",
        "/abs/x.xml",
    ]
