"""config.toml: a declared schema, validated at load time into frozen objects.

Every key has one validator, a default (or is required) and a help text; the
same table renders the README reference (``publisher config --reference``), and
a test fails when the README and the table disagree. Unknown keys are errors;
nothing is clamped or defaulted silently. All problems are collected and
reported together, each as ``config.toml: [section].key: expected ..., got ...``.

Secrets never live here: the SMTP password, the token signing key and the DKIM
key come from environment variables whose *names* may be configured.


The package is split by what each part is: publisher.config.validators (one per
kind of value), publisher.config.table (the declared settings), publisher.config.derived
(what is rendered from it), publisher.config.model
(the frozen objects and the choices as StrEnums) and publisher.config.load (reading,
validating and the rules between keys).
"""

from publisher.config.derived import (
    SMTP_URL_ENV,
    reference_markdown,
    settings_toml,
    smtp_unused_warning,
    toml_value,
    unused_smtp_settings,
)
from publisher.config.load import config_from_mapping, load_config
from publisher.config.model import (
    CONFIG_NAME,
    BuildConfig,
    Cadence,
    Config,
    Content,
    DatabaseConfig,
    DkimConfig,
    EditorConfig,
    FeedsConfig,
    InboundConfig,
    InDoubtPolicy,
    NewsletterConfig,
    ScheduleConfig,
    Security,
    SiteConfig,
    SmtpConfig,
    Transport,
    WebConfig,
)
from publisher.config.table import SETTINGS, Setting
from publisher.config.validators import WEEKDAYS, Invalid, Validator, language

__all__ = [
    "CONFIG_NAME",
    "SETTINGS",
    "SMTP_URL_ENV",
    "WEEKDAYS",
    "BuildConfig",
    "Cadence",
    "Config",
    "Content",
    "DatabaseConfig",
    "DkimConfig",
    "EditorConfig",
    "FeedsConfig",
    "InDoubtPolicy",
    "InboundConfig",
    "Invalid",
    "NewsletterConfig",
    "ScheduleConfig",
    "Security",
    "Setting",
    "SiteConfig",
    "SmtpConfig",
    "Transport",
    "Validator",
    "WebConfig",
    "config_from_mapping",
    "language",
    "load_config",
    "reference_markdown",
    "settings_toml",
    "smtp_unused_warning",
    "toml_value",
    "unused_smtp_settings",
]
