"""config.toml: a declared schema, validated at load time into frozen objects.

Every key has one validator, a default (or is required) and a help text; the
same table renders the README reference (``publisher config --reference``), and
a test fails when the README and the table disagree. Unknown keys are errors;
nothing is clamped or defaulted silently. All problems are collected and
reported together, each as ``config.toml: [section].key: expected ..., got ...``.

Secrets never live here: the SMTP password, the token signing key and the DKIM
key come from environment variables whose *names* may be configured.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import ConfigError, Location, Problem

CONFIG_NAME = "config.toml"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Invalid(ValueError):
    """A value failed validation; the message completes 'expected ...'."""


Validator = Callable[[Any], Any]


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("a string")
    if any(ch in value for ch in "\r\n\x00"):
        raise Invalid("a single-line string without CR, LF or NUL")
    return value


def nonempty_string(value: Any) -> str:
    text = string(value).strip()
    if not text:
        raise Invalid("a non-empty string")
    return text


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("true or false")
    return value


def integer(low: int, high: int) -> Validator:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"an integer {low}-{high}")
        return value

    return check


def number(low: float, high: float) -> Validator:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Invalid(f"a number {low}-{high}")
        if not low <= value <= high:
            raise Invalid(f"a number {low}-{high}")
        return float(value)

    return check


def choice(*options: str) -> Validator:
    def check(value: Any) -> str:
        if value not in options:
            raise Invalid("one of " + ", ".join(f'"{o}"' for o in options))
        return str(value)

    return check


def http_url(value: Any) -> str:
    text = string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("an absolute http(s) URL such as https://blog.example.com/")
    if parts.query or parts.fragment:
        raise Invalid("a URL without query or fragment")
    # One canonical form: a trailing slash, so joining relative paths is simple.
    return text if text.endswith("/") else text + "/"


def timezone(value: Any) -> ZoneInfo:
    text = string(value)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid("an IANA time zone such as Asia/Seoul") from exc


_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def language(value: Any) -> str:
    text = string(value)
    # RSS/Atom validators reject "ko_KR" (RELIABILITY C5): BCP 47 uses hyphens.
    if not _LANG.match(text):
        raise Invalid('a BCP 47 language tag such as "ko" or "en-US"')
    return text


_EMAIL = re.compile(r"^[^@\s<>\"(),;:]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def email_address(value: Any) -> str:
    text = string(value)
    if not _EMAIL.match(text) or not text.isascii():
        raise Invalid("an ASCII email address such as news@example.com")
    return text


def optional(inner: Validator) -> Validator:
    def check(value: Any) -> Any:
        if value == "":
            return None
        return inner(value)

    return check


def clock_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    text = string(value)
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", text)
    if not match:
        raise Invalid('a 24-hour time "HH:MM"')
    return time(int(match[1]), int(match[2]))


def weekday(value: Any) -> str:
    text = string(value).lower()
    if text not in WEEKDAYS:
        raise Invalid("a weekday name such as monday")
    return text


def moment(value: Any) -> datetime | date:
    """A TOML date or datetime; zone-less values are read in the site timezone later."""
    if isinstance(value, datetime | date):
        return value
    raise Invalid("a TOML date or datetime such as 2025-06-20 or 2025-06-20T09:00:00+09:00")


def string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid("a list of strings")
    return tuple(value)


def related_heading(value: Any) -> str:
    text = nonempty_string(value)
    try:
        text.format(category="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise Invalid("text with at most the placeholder {category}") from exc
    return text


def env_name(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", text):
        raise Invalid("an environment variable name such as PUBLISHER_SMTP_PASSWORD")
    return text


def relative_dir(value: Any) -> str:
    text = nonempty_string(value)
    return text


@dataclass(frozen=True)
class Setting:
    """One documented key: its validator, default (None = required) and help."""

    section: str
    key: str
    validator: Validator
    default: Any
    help: str
    required: bool = False

    @property
    def name(self) -> str:
        return f"[{self.section}].{self.key}"


def _s(section: str, key: str, validator: Validator, default: Any, help: str) -> Setting:
    return Setting(section, key, validator, default, help)


def _required(section: str, key: str, validator: Validator, help: str) -> Setting:
    return Setting(section, key, validator, None, help, required=True)


SETTINGS: tuple[Setting, ...] = (
    _required("site", "title", nonempty_string, "Blog title, shown on every page and in feeds."),
    _required(
        "site",
        "base_url",
        http_url,
        "Public URL of the blog; every link, feed id and email URL is built from it.",
    ),
    _required(
        "site",
        "author",
        nonempty_string,
        "Default author of posts and of the feeds (RFC 4287 requires one).",
    ),
    _s(
        "site",
        "author_email",
        optional(email_address),
        "",
        "Author email shown in feeds; empty for none.",
    ),
    _s(
        "site",
        "description",
        string,
        "",
        "One-line description for the home page, feeds and OpenGraph.",
    ),
    _s(
        "site",
        "language",
        language,
        "ko",
        "BCP 47 language of the site: `<html lang>`, feeds' language.",
    ),
    _s(
        "site",
        "timezone",
        timezone,
        "Asia/Seoul",
        "IANA zone for dates without a zone, display and the schedule.",
    ),
    _s("site", "posts_per_page", integer(1, 1000), 10, "Posts per home, category and tag page."),
    _s(
        "site",
        "related_count",
        integer(0, 50),
        5,
        "How many other posts of the same category end each post (0 turns the list off).",
    ),
    _s(
        "site",
        "related_heading",
        related_heading,
        "'{category}' 카테고리의 다른 글",
        "Heading of the related-category list; `{category}` is replaced.",
    ),
    _s(
        "site",
        "summary_length",
        integer(20, 2000),
        150,
        "Length of derived summaries, in characters (not words, so Korean is cut fairly).",
    ),
    _s(
        "site",
        "reading_cpm",
        integer(50, 5000),
        500,
        "Reading speed for Hangul/CJK text, in characters per minute.",
    ),
    _s(
        "site",
        "reading_wpm",
        integer(50, 2000),
        230,
        "Reading speed for other text, in words per minute.",
    ),
    _s(
        "site",
        "date_format",
        nonempty_string,
        "%Y.%m.%d",
        "strftime format for dates shown on pages and in emails.",
    ),
    _s(
        "build",
        "posts_dir",
        relative_dir,
        "posts",
        "Folder of Markdown posts, relative to the site folder.",
    ),
    _s(
        "build",
        "templates_dir",
        relative_dir,
        "templates",
        "Folder of Jinja2 templates overriding the default theme.",
    ),
    _s("build", "output_dir", relative_dir, "public", "Folder the built site is swapped into."),
    _s(
        "build",
        "max_post_bytes",
        integer(1024, 50_000_000),
        2_000_000,
        "Largest accepted post file, in bytes.",
    ),
    _s(
        "feeds",
        "full_content",
        boolean,
        True,
        "Feeds carry the full article (true) or the summary (false).",
    ),
    _s("feeds", "max_items", integer(1, 1000), 20, "Newest posts per feed."),
    _s(
        "feeds",
        "per_category",
        boolean,
        True,
        "Also write an RSS and an Atom feed for each category.",
    ),
    _s(
        "newsletter",
        "enabled",
        boolean,
        True,
        "Create newsletter issues for posts published from `start` on.",
    ),
    _s(
        "newsletter",
        "start",
        optional(moment),
        "",
        "Only posts dated at or after this become issues; empty = when the newsletter was first enabled.",
    ),
    _s(
        "newsletter",
        "cadence",
        choice("per_post", "daily", "weekly"),
        "per_post",
        "One issue per post, or a daily/weekly digest.",
    ),
    _s("newsletter", "digest_time", clock_time, "08:00", "Local time (site timezone) of digests."),
    _s("newsletter", "digest_weekday", weekday, "monday", "Weekday of weekly digests."),
    _s(
        "newsletter",
        "content",
        choice("full", "summary"),
        "full",
        "Emails carry the full article or its summary.",
    ),
    _required("newsletter", "from_address", email_address, "Envelope sender and From address."),
    _s("newsletter", "from_name", string, "", "Display name in From; empty uses the site title."),
    _s("newsletter", "reply_to", optional(email_address), "", "Reply-To address; empty for none."),
    _s(
        "newsletter",
        "postal_address",
        string,
        "",
        "Postal address shown in every email's footer (CAN-SPAM asks for one); empty for none.",
    ),
    _s(
        "newsletter",
        "list_id",
        string,
        "",
        "List-Id header value, e.g. `news.blog.example.com`; empty derives it from base_url.",
    ),
    _s(
        "newsletter",
        "unsubscribe_mailto",
        optional(email_address),
        "",
        "Address for the `mailto:` List-Unsubscribe entry; empty for none.",
    ),
    _s(
        "newsletter",
        "transport",
        choice("outbox", "smtp"),
        "outbox",
        "Where mail goes: `.eml` files in the outbox folder, or SMTP.",
    ),
    _s(
        "newsletter",
        "outbox_dir",
        relative_dir,
        "outbox",
        "Folder of the outbox transport, relative to the site folder.",
    ),
    _s(
        "newsletter",
        "in_doubt_policy",
        choice("resend_once", "hold"),
        "resend_once",
        "Messages whose SMTP reply was lost: re-send once with the same Message-ID, or hold for the operator.",
    ),
    _s(
        "newsletter",
        "max_attempts",
        integer(1, 50),
        5,
        "Attempts before a temporarily failing delivery becomes permanent.",
    ),
    _s(
        "newsletter",
        "retry_base_seconds",
        integer(1, 86400),
        60,
        "First retry delay; doubles each attempt, with jitter.",
    ),
    _s(
        "newsletter",
        "max_retry_hours",
        integer(1, 720),
        72,
        "Give up retrying a delivery after this many hours.",
    ),
    _s(
        "newsletter",
        "batch_size",
        integer(1, 100_000),
        500,
        "Subscribers read from the store per batch.",
    ),
    _s(
        "newsletter",
        "pause_after_rejections",
        integer(1, 1000),
        5,
        "Consecutive content rejections (5xx at DATA) that pause an issue.",
    ),
    _s(
        "newsletter",
        "bounce_limit",
        integer(1, 100),
        3,
        "Hard bounces after which a subscriber is marked bounced.",
    ),
    _s(
        "newsletter",
        "max_html_bytes",
        integer(10_000, 10_000_000),
        90_000,
        "Warn when an issue's HTML passes this size (Gmail clips at about 102 KB).",
    ),
    _s(
        "newsletter",
        "bounce_address",
        optional(email_address),
        "",
        "VERP return path base, e.g. `bounces@blog.example.com`: each message's envelope sender becomes `bounces+<issue>.<subscriber>.<mac>@...`; empty = the From address.",
    ),
    _s(
        "newsletter",
        "bounce_key_env",
        env_name,
        "PUBLISHER_BOUNCE_KEY",
        "Environment variable holding the HMAC key of VERP return paths (required when bounce_address is set).",
    ),
    _s("smtp", "host", string, "localhost", "SMTP server host."),
    _s("smtp", "port", integer(1, 65535), 587, "SMTP server port."),
    _s(
        "smtp",
        "security",
        choice("starttls", "tls", "none"),
        "starttls",
        "STARTTLS, implicit TLS, or none (loopback testing only); certificates are always verified.",
    ),
    _s("smtp", "username", string, "", "Login name; empty for no login."),
    _s(
        "smtp",
        "password_env",
        env_name,
        "PUBLISHER_SMTP_PASSWORD",
        "Environment variable holding the SMTP password.",
    ),
    _s("smtp", "timeout_seconds", number(1, 600), 30, "Socket timeout for every SMTP command."),
    _s("smtp", "concurrency", integer(1, 32), 1, "Parallel SMTP connections."),
    _s(
        "smtp",
        "rate_per_second",
        number(0, 10000),
        0,
        "Messages per second across connections; 0 for no limit.",
    ),
    _s(
        "smtp",
        "rate_per_hour",
        integer(0, 10_000_000),
        0,
        "Messages per rolling hour, kept in the database; 0 for no limit.",
    ),
    _s(
        "smtp",
        "messages_per_connection",
        integer(1, 10000),
        20,
        "Reconnect after this many messages (Yahoo asks for about 20).",
    ),
    _s(
        "dkim",
        "enabled",
        boolean,
        False,
        "Sign messages with DKIM, covering List-Unsubscribe and List-Unsubscribe-Post.",
    ),
    _s("dkim", "domain", string, "", "DKIM signing domain (d=), aligned with the From domain."),
    _s("dkim", "selector", string, "", "DKIM selector (s=)."),
    _s(
        "dkim",
        "key_env",
        env_name,
        "PUBLISHER_DKIM_PRIVATE_KEY",
        "Environment variable holding the PEM private key.",
    ),
    _s(
        "dkim",
        "key_file",
        string,
        "",
        "Path to the PEM private key (outside the repository); used when key_env is unset.",
    ),
    _s(
        "database",
        "url",
        nonempty_string,
        "sqlite:///publisher.db",
        "SQLAlchemy URL; relative SQLite paths are under the site folder. `PUBLISHER_DATABASE_URL` overrides.",
    ),
    _s(
        "web",
        "base_url",
        optional(http_url),
        "",
        "Public URL of the subscription service; empty = `<site.base_url>newsletter/`.",
    ),
    _s("web", "host", nonempty_string, "127.0.0.1", "Address `publisher web` listens on."),
    _s("web", "port", integer(1, 65535), 8080, "Port `publisher web` listens on."),
    _s("web", "signup_form", boolean, True, "Show the signup form on blog pages."),
    _s(
        "web",
        "secret_env",
        env_name,
        "PUBLISHER_SECRET_KEY",
        "Environment variable holding the token signing key (several, comma-separated, newest first, rotate keys).",
    ),
    _s("web", "token_max_age_hours", integer(1, 720), 72, "Lifetime of confirmation links."),
    _s(
        "web",
        "trusted_proxies",
        string_list,
        [],
        "Proxy addresses whose X-Forwarded-For is believed.",
    ),
    _s(
        "web",
        "signups_per_ip_per_hour",
        integer(1, 100_000),
        10,
        "Signup requests per client address per hour.",
    ),
    _s(
        "web",
        "confirmations_per_address_hours",
        integer(1, 720),
        6,
        "At most one confirmation mail per address in this many hours.",
    ),
    _s(
        "web",
        "confirmations_per_hour",
        integer(1, 1_000_000),
        200,
        "Global cap on confirmation mails per hour.",
    ),
    _s(
        "inbound",
        "max_message_bytes",
        integer(10_000, 100_000_000),
        10_000_000,
        "Largest report `publisher inbound` and its listener accept; larger ones are refused.",
    ),
    _s(
        "inbound",
        "soft_bounce_limit",
        integer(1, 100),
        5,
        "Soft bounces (4.x.x) within soft_bounce_days after which a subscriber is marked bounced.",
    ),
    _s(
        "inbound",
        "soft_bounce_days",
        integer(1, 365),
        30,
        "Soft bounces older than this are forgotten (the soft count decays).",
    ),
    _s(
        "inbound",
        "replay_window_seconds",
        integer(30, 86400),
        300,
        "Signed webhook requests older (or newer) than this are refused as replays.",
    ),
    _s(
        "inbound",
        "postmark_auth_env",
        env_name,
        "PUBLISHER_POSTMARK_WEBHOOK_AUTH",
        "Environment variable holding `user:password` of the Postmark webhook's Basic auth.",
    ),
    _s(
        "inbound",
        "mailgun_key_env",
        env_name,
        "PUBLISHER_MAILGUN_SIGNING_KEY",
        "Environment variable holding the Mailgun HTTP webhook signing key.",
    ),
    _s(
        "inbound",
        "sendgrid_key_env",
        env_name,
        "PUBLISHER_SENDGRID_PUBLIC_KEY",
        "Environment variable holding SendGrid's signed event webhook public key (base64).",
    ),
    _s(
        "inbound",
        "resend_secret_env",
        env_name,
        "PUBLISHER_RESEND_WEBHOOK_SECRET",
        "Environment variable holding the Resend (Svix) webhook secret `whsec_...`.",
    ),
    _s(
        "inbound",
        "ses_certificate",
        string,
        "",
        "PEM file of the pinned Amazon SNS signing certificate, relative to the site folder; empty = SES webhooks refused.",
    ),
    _s(
        "inbound",
        "ses_topic_arn",
        string,
        "",
        "The only SNS topic ARN whose SES notifications are accepted.",
    ),
    _s(
        "schedule",
        "poll_seconds",
        integer(1, 3600),
        60,
        "How often `publisher run` looks for new, due and changed posts.",
    ),
    _s(
        "schedule",
        "lease_seconds",
        integer(10, 86400),
        300,
        "How long a claimed delivery or job stays claimed before another process may take it.",
    ),
    _s(
        "editor",
        "enabled",
        boolean,
        False,
        "Serve the browser editor and Micropub from `publisher web`.",
    ),
    _s(
        "editor",
        "base_url",
        optional(http_url),
        "",
        "Public URL of the editor; empty = `<site.base_url>editor/` (Micropub is `<base_url>micropub`).",
    ),
    _s("editor", "session_hours", integer(1, 720), 12, "How long an editor stays signed in."),
    _s(
        "editor",
        "login_attempts_per_hour",
        integer(1, 10_000),
        10,
        "Failed sign-ins allowed per client address and per account per hour.",
    ),
    _s(
        "editor",
        "max_upload_bytes",
        integer(1024, 100_000_000),
        10_000_000,
        "Largest image an editor or a writing app may upload.",
    ),
    _s(
        "editor",
        "git_commit",
        boolean,
        False,
        "Commit each save when the site folder is a git repository.",
    ),
    _s(
        "editor",
        "trash_dir",
        relative_dir,
        "trash",
        "Where deleted posts go (restorable), under the site folder.",
    ),
)


@dataclass(frozen=True)
class SiteConfig:
    title: str
    base_url: str
    author: str
    author_email: str | None
    description: str
    language: str
    timezone: ZoneInfo
    posts_per_page: int
    related_count: int
    related_heading: str
    summary_length: int
    reading_cpm: int
    reading_wpm: int
    date_format: str


@dataclass(frozen=True)
class BuildConfig:
    posts_dir: str
    templates_dir: str
    output_dir: str
    max_post_bytes: int


@dataclass(frozen=True)
class FeedsConfig:
    full_content: bool
    max_items: int
    per_category: bool


@dataclass(frozen=True)
class NewsletterConfig:
    enabled: bool
    start: datetime | date | None
    cadence: str
    digest_time: time
    digest_weekday: str
    content: str
    from_address: str
    from_name: str
    reply_to: str | None
    postal_address: str
    list_id: str
    unsubscribe_mailto: str | None
    transport: str
    outbox_dir: str
    in_doubt_policy: str
    max_attempts: int
    retry_base_seconds: int
    max_retry_hours: int
    batch_size: int
    pause_after_rejections: int
    bounce_limit: int
    max_html_bytes: int
    bounce_address: str | None
    bounce_key_env: str


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str
    username: str
    password_env: str
    timeout_seconds: float
    concurrency: int
    rate_per_second: float
    rate_per_hour: int
    messages_per_connection: int


@dataclass(frozen=True)
class DkimConfig:
    enabled: bool
    domain: str
    selector: str
    key_env: str
    key_file: str


@dataclass(frozen=True)
class DatabaseConfig:
    url: str


@dataclass(frozen=True)
class WebConfig:
    base_url: str | None
    host: str
    port: int
    signup_form: bool
    secret_env: str
    token_max_age_hours: int
    trusted_proxies: tuple[str, ...]
    signups_per_ip_per_hour: int
    confirmations_per_address_hours: int
    confirmations_per_hour: int


@dataclass(frozen=True)
class InboundConfig:
    max_message_bytes: int
    soft_bounce_limit: int
    soft_bounce_days: int
    replay_window_seconds: int
    postmark_auth_env: str
    mailgun_key_env: str
    sendgrid_key_env: str
    resend_secret_env: str
    ses_certificate: str
    ses_topic_arn: str


@dataclass(frozen=True)
class EditorConfig:
    enabled: bool
    base_url: str | None
    session_hours: int
    login_attempts_per_hour: int
    max_upload_bytes: int
    git_commit: bool
    trash_dir: str


@dataclass(frozen=True)
class ScheduleConfig:
    poll_seconds: int
    lease_seconds: int


_SECTIONS: dict[str, type] = {
    "site": SiteConfig,
    "build": BuildConfig,
    "feeds": FeedsConfig,
    "newsletter": NewsletterConfig,
    "smtp": SmtpConfig,
    "dkim": DkimConfig,
    "database": DatabaseConfig,
    "web": WebConfig,
    "inbound": InboundConfig,
    "schedule": ScheduleConfig,
    "editor": EditorConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole validated configuration plus where it came from."""

    root: Path
    site: SiteConfig
    build: BuildConfig
    feeds: FeedsConfig
    newsletter: NewsletterConfig
    smtp: SmtpConfig
    dkim: DkimConfig
    database: DatabaseConfig
    web: WebConfig
    schedule: ScheduleConfig
    inbound: InboundConfig
    editor: EditorConfig
    source: str = CONFIG_NAME
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def posts_path(self) -> Path:
        return self.root / self.build.posts_dir

    @property
    def templates_path(self) -> Path:
        return self.root / self.build.templates_dir

    @property
    def output_path(self) -> Path:
        return self.root / self.build.output_dir

    @property
    def outbox_path(self) -> Path:
        return self.root / self.newsletter.outbox_dir

    @property
    def web_base_url(self) -> str:
        return self.web.base_url or self.site.base_url + "newsletter/"

    @property
    def editor_base_url(self) -> str:
        return self.editor.base_url or self.site.base_url + "editor/"

    @property
    def list_id(self) -> str:
        if self.newsletter.list_id:
            return self.newsletter.list_id
        host = urlsplit(self.site.base_url).hostname or "localhost"
        return f"newsletter.{host}"

    @property
    def from_name(self) -> str:
        return self.newsletter.from_name or self.site.title

    @property
    def database_url(self) -> str:
        """The database URL: the environment wins, relative SQLite paths sit under the site."""
        url = self.env.get("PUBLISHER_DATABASE_URL") or self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            relative = url[len(prefix) :]
            if relative and relative != ":memory:":
                return prefix + str((self.root / relative).resolve())
        return url

    def secret(self, env_var: str) -> str | None:
        """A secret from the environment, or None when unset or blank."""
        value = self.env.get(env_var, "").strip()
        return value or None


SMTP_URL_ENV = "PUBLISHER_SMTP_URL"  # overrides [smtp] (publisher.deliver.transports)


def unused_smtp_settings(config: Config) -> list[str]:
    """SMTP settings that are set although ``transport = "outbox"`` ignores them.

    ``$PUBLISHER_SMTP_URL``, the password variable, and every ``[smtp]`` key whose
    value differs from its default: each one tells that the operator meant to send
    by SMTP (issue 8, item 18).
    """
    if config.newsletter.transport != "outbox":
        return []
    found = [f"${SMTP_URL_ENV}"] if config.env.get(SMTP_URL_ENV, "").strip() else []
    found += [
        s.name
        for s in SETTINGS
        if s.section == "smtp" and getattr(config.smtp, s.key) != s.validator(s.default)
    ]
    if config.secret(config.smtp.password_env):
        found.append(f"${config.smtp.password_env}")
    return found


def smtp_unused_warning(config: Config) -> str | None:
    """The warning to print when SMTP settings are present but unused, else None."""
    unused = unused_smtp_settings(config)
    if not unused:
        return None
    return (
        f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} set but unused: "
        f'[newsletter].transport is "outbox", so mail is written to {config.outbox_path}/ '
        'and not sent; set transport = "smtp" to send it by SMTP'
    )


def load_config(root: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``<root>/config.toml``; raise ConfigError listing every problem."""
    root = Path(root)
    path = root / CONFIG_NAME
    shown = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            [Problem(Location(shown), "file not found")],
            hint="Run publisher in a site folder, or pass --site DIR.",
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem(Location(shown), f"not valid UTF-8 at byte {exc.start}")]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(Location(shown), f"invalid TOML: {exc}")]) from None
    return config_from_mapping(raw, root=root, source=shown, env=env)


def config_from_mapping(
    raw: Mapping[str, Any],
    root: Path | str = ".",
    source: str = CONFIG_NAME,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate an already-parsed TOML mapping (tests build configs this way)."""
    problems: list[Problem] = []
    where = Location(source)
    for name in raw:
        if name not in _SECTIONS:
            expected = ", ".join(f"[{s}]" for s in _SECTIONS)
            problems.append(Problem(where, f"unknown section [{name}]; expected one of {expected}"))
    sections: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = raw.get(section, {})
        if not isinstance(table, Mapping):
            problems.append(Problem(where, f"[{section}] must be a table"))
            table = {}
        sections[section] = _build_section(section, cls, table, where, problems)
    if problems:
        raise ConfigError(problems, hint="See the configuration reference in README.md.")
    return Config(
        root=Path(root).resolve(),
        source=source,
        env=dict(os.environ if env is None else env),
        **sections,
    )


def _build_section(
    section: str, cls: type, table: Mapping[str, Any], where: Location, problems: list[Problem]
) -> Any:
    settings = {s.key: s for s in SETTINGS if s.section == section}
    for key in table:
        if key not in settings:
            known = ", ".join(sorted(settings))
            problems.append(Problem(where, f"[{section}].{key}: unknown key; known keys: {known}"))
    values: dict[str, Any] = {}
    for key, setting in settings.items():
        if key not in table:
            if setting.required:
                problems.append(Problem(where, f"{setting.name}: required ({setting.help})"))
                continue
            values[key] = setting.validator(setting.default)
            continue
        try:
            values[key] = setting.validator(table[key])
        except Invalid as exc:
            problems.append(
                Problem(where, f"{setting.name}: expected {exc}, got {_describe(table[key])}")
            )
    if len(values) != len(settings):
        return None
    return cls(**values)


def reference_markdown() -> str:
    """The configuration reference as a Markdown table, embedded verbatim in README.md."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "*required*" if s.required else f"`{_toml_literal(s.default)}`"
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


# Settings whose empty value is filled in when the configuration is used.
_DERIVED: dict[str, Callable[[Config], Any]] = {
    "[newsletter].from_name": lambda c: c.from_name,
    "[newsletter].list_id": lambda c: c.list_id,
    "[web].base_url": lambda c: c.web_base_url,
    "[database].url": lambda c: _without_password(c.database_url),
}


def settings_toml(config: Config) -> str:
    """Every setting in force as valid TOML, derived values filled in (``publisher config``).

    Read back as config.toml it gives the same configuration. Empty optional values
    are written as ``""``, which is how config.toml says "not set".
    """
    lines = [f"# The settings in force for {config.root / config.source}: defaults included,"]
    lines.append("# derived values filled in; $PUBLISHER_DATABASE_URL applied, password hidden.")
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            lines += ["", f"[{section}]"]
        derive = _DERIVED.get(setting.name)
        value = getattr(getattr(config, section), setting.key)
        lines.append(f"{setting.key} = {toml_value(derive(config) if derive else value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal: strings JSON-escaped (a subset of TOML's basic strings)."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # str, and a ZoneInfo's key


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    return str(value)
