"""Settings (environment and ``.env``) and newsletter definitions (``digest.toml``).

Settings are typed and read once: the real environment overrides ``.env``; every
key is prefixed ``DIGEST_`` except ``SENDGRID_API_KEY``, which keeps the name the
SendGrid tooling uses.  Newsletters are defined in TOML and validated into
:class:`NewsletterConfig`; any mistake becomes one :class:`~digest.errors.ConfigError`
naming the file, the key and the problem.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Iterable
from datetime import timedelta
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from digest.errors import ConfigError

SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_CONFIG = SAMPLE_DIR / "digest.toml"


#: DIGEST_SECRET_KEY's default: fine on a developer's machine, refused for mail that really
#: goes out and for a web app at an https address.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-change-me"


class Settings(BaseSettings):
    """Process-wide settings.  See ``.env.example`` for one line on each."""

    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///digest.db"
    config: Path = Path("digest.toml")
    templates: Path | None = None
    base_url: str = "http://127.0.0.1:8000"
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET_KEY)
    #: The delivery backend's name (see :mod:`digest.delivery.registry`); None when unset.
    backend: str | None = None
    outbox_dir: Path = Path("outbox")
    smtp_url: str | None = None
    sendgrid_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENDGRID_API_KEY", "sendgrid_api_key")
    )
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    #: Bootstrap admin password: signs in only until the first admin account exists.
    admin_password: SecretStr | None = None
    #: Subscribe-form posts allowed per client IP per minute (an in-process token bucket).
    subscribe_rate: int = Field(default=5, ge=1, le=10_000)
    #: Seconds the web app gathers clicks and opens before writing them in one
    #: transaction (0: each is written as it comes).  See :mod:`digest.tracking`.
    hit_flush_seconds: float = Field(default=0.2, ge=0, le=3600)
    http_timeout: float = Field(default=20.0, gt=0)
    http_max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    log_level: str = "INFO"
    #: Seconds a scheduled run may start late; a run missed by more is recorded, not sent.
    scheduler_misfire_grace: int = Field(default=3600, gt=0)
    #: Messages per second the SMTP relay account takes, shared by every process that sends
    #: through it (workers, `digest send`, the scheduler); None: no shared limit.
    smtp_rate: float | None = Field(default=None, gt=0)
    #: The same for the SendGrid account (``SENDGRID_API_KEY``).
    sendgrid_rate: float | None = Field(default=None, gt=0)
    #: Proxies (IP addresses or networks) whose ``X-Forwarded-For`` and
    #: ``X-Forwarded-Proto`` the web app believes; none by default, so that a client
    #: cannot pick its own address for the rate limits.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> list[str]:
        items = re.split(r"[\s,]+", value) if isinstance(value, str) else list(value or [])
        networks = []
        for item in (str(i).strip() for i in items):
            if not item:
                continue
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an IP address or network; list the proxies' addresses "
                    "separated by commas, e.g. 10.0.0.5,192.168.1.0/24"
                ) from None
        return networks

    #: Envelope sender for bounces (VERP): each SMTP message's MAIL FROM becomes
    #: ``local+TOKEN@domain``; None keeps the newsletter's sender (no bounce handling).
    bounce_address: str | None = None
    #: Soft bounces (mailbox full, greylisting given up, policy refusals) that suppress an
    #: address when this many arrive within ``soft_bounce_days`` days.
    soft_bounce_limit: int = Field(default=5, ge=1, le=1000)
    soft_bounce_days: int = Field(default=30, ge=1, le=3650)
    #: ``imaps://user:pass@host/INBOX``: where bounces land, for ``digest inbound --imap``.
    bounce_imap_url: SecretStr | None = None
    #: Folder processed messages are moved to (created when missing); never deleted.
    bounce_imap_folder: str = Field(default="digest-processed", min_length=1, max_length=200)
    #: Seconds an uncertain delivery (its post had no answer) waits for the provider's
    #: events before ``digest send --resend-uncertain`` may send it again (SendGrid with
    #: its Event Webhook; backends that report nothing do not wait).
    uncertain_grace: int = Field(default=900, ge=0, le=7 * 86400)
    #: Editors' addresses (comma-separated): told, with a test copy, when the scheduler
    #: prepares a draft of a newsletter whose ``approval = "required"``.
    editors: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("editors", mode="before")
    @classmethod
    def _editors(cls, value: Any) -> list[str]:
        items = re.split(r"[\s,;]+", value) if isinstance(value, str) else list(value or [])
        found = [str(i).strip() for i in items if str(i).strip()]
        for item in found:
            local, at, domain = item.rpartition("@")
            if not at or not local or "." not in domain or any(c in item for c in ' <>"(),;:'):
                raise ValueError(
                    f"{item!r} is not an email address; list the editors' addresses, "
                    "comma-separated, e.g. DIGEST_EDITORS=ann@example.org,bo@example.org"
                )
        return found

    @field_validator(
        "templates",
        "backend",
        "bounce_address",
        "bounce_imap_url",
        "smtp_rate",
        "sendgrid_rate",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `DIGEST_TEMPLATES=` (as in .env.example) means "no override", not the current
        # folder; `DIGEST_BACKEND=` means unset (the backend is then worked out); so do
        # an empty bounce address and IMAP URL.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bounce_address")
    @classmethod
    def _plain_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        local, at, domain = value.rpartition("@")
        if (
            not at
            or not local
            or "." not in domain
            or not value.isascii()
            or any(c in value for c in ' <>"(),;:\\')
        ):
            raise ValueError(
                f"{value!r} is not a plain address; write it as bounces@news.example.org"
            )
        if "+" in local:
            raise ValueError(
                f"{value!r}: leave out the '+' part; digest adds '+TOKEN' to the local part itself"
            )
        return value

    @cached_property
    def config_path(self) -> Path:
        """The newsletter file in use: ``DIGEST_CONFIG`` or ``./digest.toml``, else the sample."""
        if self.config.exists():
            return self.config
        if self.config == Path("digest.toml"):
            return SAMPLE_CONFIG
        raise ConfigError(
            f"{self.config}: DIGEST_CONFIG points to a file that does not exist; "
            "create it or unset DIGEST_CONFIG to use ./digest.toml"
        )


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and ``.env``; bad values become a ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_env_name(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"settings: {problems}") from None


def _env_name(loc: tuple[Any, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    if name.upper() == "SENDGRID_API_KEY":
        return "SENDGRID_API_KEY"
    return f"DIGEST_{name.upper()}"


# ---------------------------------------------------------------------------
# Newsletter definitions


def category_key(name: str) -> str:
    """The comparison form of a category name: case, spacing and ``&``/``and`` folded."""
    folded = name.replace("&", " and ").casefold()
    return " ".join(re.findall(r"\w+", folded))


class CategoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class SourceConfig(BaseModel):
    """A feed or article page: a URL, or a file path relative to the config file."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    kind: Literal["auto", "feed", "page"] = "auto"


_WINDOW = re.compile(r"^(week|\d{1,3}d)$")
_DURATION = re.compile(r"^(\d{1,4})\s*([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str, key: str) -> timedelta:
    """``18h``, ``90m``, ``2d`` as a timedelta (at most 30 days); a ValueError says how
    to write one."""
    match = _DURATION.match(value.strip())
    amount = timedelta(**{_UNITS[match[2]]: int(match[1])}) if match else None
    if amount is None or not timedelta(0) < amount <= timedelta(days=30):
        raise ValueError(
            f"{key} = {value!r} is not a duration; write minutes, hours or days up to 30 days, "
            "like '18h', '90m' or '2d'"
        )
    return amount


_SCHEDULE_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class NewsletterConfig(BaseModel):
    """One newsletter from ``digest.toml`` (``[newsletters.NAME]``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    title: str = Field(min_length=1)
    #: Why readers get it: the emails' footer (and the subscribe page, without ``pitch``).
    description: str = ""
    #: The subscribe page's (and the embeddable form's) words; default: ``description``.
    pitch: str = ""
    #: The subscriber list this newsletter mails (``list`` in the TOML).
    list_name: str = Field(alias="list", min_length=1)
    sources: list[SourceConfig] = Field(default_factory=list)
    categories: list[CategoryConfig] = Field(default_factory=list)
    other_category: str | None = "Other"
    max_per_category: int = Field(default=6, ge=1, le=100)
    timezone: str = "UTC"
    schedule: str = "mon 08:00"
    window: str = "week"
    sender: str
    reply_to: str | None = None
    #: Optional mailbox for the ``mailto:`` half of List-Unsubscribe.
    unsubscribe_mailto: str | None = None
    locale: str = "en_GB"
    postal_address: str = ""
    utm: dict[str, str] = Field(
        default_factory=lambda: {
            "utm_source": "digest",
            "utm_medium": "email",
            "utm_campaign": "{newsletter}-{period}",
        }
    )
    archive: bool = False
    local_time: bool = False
    #: Article links go through the web app's ``/r/…`` redirect, which counts clicks.
    track_clicks: bool = False
    #: A 1x1 image (``/o/…``) counts opens (estimates: see the README).
    track_opens: bool = False
    #: ``auto``: the scheduler sends at the scheduled time; ``required``: it prepares a
    #: draft ``prepare_before`` ahead, tells the editors, and sends only once approved.
    approval: Literal["auto", "required"] = "auto"
    #: How long before the send the draft is prepared: ``18h``, ``90m``, ``2d``.
    prepare_before: str = "18h"
    #: An approval after the scheduled run was held: ``now`` sends it at once, ``next``
    #: at the newsletter's next scheduled run.
    late_approval: Literal["now", "next"] = "now"

    @field_validator("prepare_before")
    @classmethod
    def _prepare_before(cls, value: str) -> str:
        parse_duration(value, "prepare_before")
        return value

    @property
    def prepare_ahead(self) -> timedelta:
        """``prepare_before`` as a timedelta."""
        return parse_duration(self.prepare_before, "prepare_before")

    #: Who delivers the scheduled runs: ``direct`` (the scheduler sends) or ``workers``
    #: (the scheduler plans the edition and `digest worker` processes send it).
    delivery: Literal["direct", "workers"] = "direct"

    @property
    def subscribe_pitch(self) -> str:
        """What the subscribe page says about the newsletter."""
        return self.pitch or self.description

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/London'"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from digest.schedule_rules import parse_schedule  # APScheduler only when needed

        parse_schedule(value)
        return value

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError):
            raise ValueError(f"unknown locale {value!r}; use a name such as 'en_GB'") from None
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not _WINDOW.match(value) or value == "0d":
            raise ValueError(
                f"{value!r} is not a window; use 'week' or a number of days between 1d and 999d, "
                "like '7d'"
            )
        return value

    @field_validator("sender", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _, addr = parseaddr(value)
        if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
            raise ValueError(
                f"{value!r} is not an email address; write 'Name <news@example.org>' "
                "or 'news@example.org'"
            )
        return value

    @model_validator(mode="after")
    def _unique_categories(self) -> NewsletterConfig:
        seen: dict[str, str] = {}
        numbers: dict[str, int] = {}
        for number, cat in enumerate(self.categories, start=1):
            if cat.name in numbers:
                raise ValueError(
                    f"categories {numbers[cat.name]} and {number} are both named {cat.name!r}; "
                    "give each category its own name (a second spelling of one belongs in its "
                    "aliases)"
                )
            numbers[cat.name] = number
            for label in (cat.name, *cat.aliases):
                key = category_key(label)
                if key in seen and seen[key] != cat.name:
                    raise ValueError(
                        f"category label {label!r} is used by both {seen[key]!r} and {cat.name!r}"
                    )
                seen[key] = cat.name
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def sender_address(self) -> str:
        return parseaddr(self.sender)[1]

    @property
    def sender_name(self) -> str:
        return parseaddr(self.sender)[0]

    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories]

    def normalise_category(self, label: str) -> str:
        """Map a feed's category label to this newsletter's name for it (or keep it)."""
        key = category_key(label)
        for cat in self.categories:
            if key == category_key(cat.name) or key in {category_key(a) for a in cat.aliases}:
                return cat.name
        return " ".join(label.split())


class DigestConfig(BaseModel):
    """The whole ``digest.toml``."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    newsletters: dict[str, NewsletterConfig]

    def newsletter(self, name: str) -> NewsletterConfig:
        try:
            return self.newsletters[name]
        except KeyError:
            known = ", ".join(sorted(self.newsletters)) or "none"
            raise ConfigError(
                f"{self.path}: no newsletter called {name!r} (defined: {known}); "
                f"add a [newsletters.{name}] table or pick one of those"
            ) from None

    def resolve_source(self, source: SourceConfig) -> str:
        """A source's URL, or its file path made absolute against the config's folder."""
        return resolve_source_ref(source.url, self.path.parent)

    def all_sources(self) -> list[tuple[NewsletterConfig, SourceConfig]]:
        return [(nl, src) for nl in self.newsletters.values() for src in nl.sources]

    def choosable_categories(
        self, lists: Iterable[str] | None = None, *, other: bool = True
    ) -> list[str] | None:
        """The categories readers of ``lists`` (every list if None) can choose: those of
        each newsletter mailing them, in order, with its "Other" section unless ``other``
        is false (the preferences page offers the named sections only).  None when none of
        those newsletters configures categories (any choice is then accepted)."""
        wanted = None if lists is None else set(lists)
        names: list[str] = []
        for nl in self.newsletters.values():
            if (wanted is not None and nl.list_name not in wanted) or not nl.categories:
                continue
            extra = [nl.other_category] if other and nl.other_category else []
            for name in [*nl.category_names, *extra]:
                if name not in names:
                    names.append(name)
        return names or None

    def category_aliases(self) -> dict[str, str]:
        """Every configured label (names and aliases, folded) mapped to its canonical name."""
        table: dict[str, str] = {}
        for nl in self.newsletters.values():
            for cat in nl.categories:
                for label in (cat.name, *cat.aliases):
                    table.setdefault(category_key(label), cat.name)
        return table


def resolve_source_ref(ref: str, base: Path) -> str:
    """URLs stay as they are; ``file://`` and bare paths become absolute paths."""
    if re.match(r"^https?://", ref, re.I):
        return ref
    if ref.startswith("file://"):
        ref = ref[len("file://") :]
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = base / path
    return str(path.resolve())


def load_config(path: Path | str) -> DigestConfig:
    """Read and validate a ``digest.toml``; every mistake is one ConfigError line."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found; create it or set DIGEST_CONFIG") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"newsletters"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown top-level key {sorted(unknown)[0]!r}; "
            "newsletters go in [newsletters.NAME] tables"
        )
    letters = raw.get("newsletters")
    if not isinstance(letters, dict) or not letters:
        raise ConfigError(f"{path}: no newsletters defined; add a [newsletters.NAME] table")
    parsed: dict[str, NewsletterConfig] = {}
    for name, table in letters.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
            raise ConfigError(
                f"{path}: newsletters.{name}: names use lowercase letters, digits, '-' and '_'"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: newsletters.{name}: must be a table")
        try:
            parsed[name] = NewsletterConfig(name=name, **table)
            for src in parsed[name].sources:  # files: absolute, so collect can match them
                src.url = resolve_source_ref(src.url, path.parent)
        except ValidationError as exc:
            raise ConfigError(_describe(path, f"newsletters.{name}", exc)) from None
        except TypeError as exc:  # e.g. a key repeated as 'name'
            raise ConfigError(f"{path}: newsletters.{name}: {exc}") from None
    return DigestConfig(path=path, newsletters=parsed)


def _describe(path: Path, prefix: str, exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
    key = f"{prefix}.{loc}" if loc else prefix
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown key; check the spelling against the README's configuration reference"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif err["type"] == "literal_error":
        allowed = str((err.get("ctx") or {}).get("expected", "")).replace(" or ", ", ")
        msg = f"{err['input']!r} is not one of {allowed}"
    elif err["type"] in ("bool_parsing", "bool_type"):
        name = loc.rsplit(".", 1)[-1]
        msg = f"{err['input']!r} is not true or false; write {name} = true or false, without quotes"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {key}: {msg}{suffix}"
