"""The validated configuration: frozen dataclasses, one per section, and the choices as
StrEnums (a member still equals its string: ``transport == "outbox"``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

CONFIG_NAME = "config.toml"


class Cadence(StrEnum):
    PER_POST = "per_post"
    DAILY = "daily"
    WEEKLY = "weekly"


class Content(StrEnum):
    FULL = "full"
    SUMMARY = "summary"


class Transport(StrEnum):
    OUTBOX = "outbox"
    SMTP = "smtp"


class InDoubtPolicy(StrEnum):
    RESEND_ONCE = "resend_once"
    HOLD = "hold"


class Security(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


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
    cadence: Cadence
    digest_time: time
    digest_weekday: str
    content: Content
    from_address: str
    from_name: str
    reply_to: str | None
    postal_address: str
    list_id: str
    unsubscribe_mailto: str | None
    transport: Transport
    outbox_dir: str
    in_doubt_policy: InDoubtPolicy
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
    security: Security
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
