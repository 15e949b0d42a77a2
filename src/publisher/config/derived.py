"""What is derived from the settings table and a loaded configuration: the README
reference, the settings in force as TOML (``publisher config``), the unused-SMTP warning."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from publisher.config.model import Config, Transport
from publisher.config.table import SETTINGS

SMTP_URL_ENV = "PUBLISHER_SMTP_URL"  # overrides [smtp] (publisher.deliver.transports)


def unused_smtp_settings(config: Config) -> list[str]:
    """SMTP settings that are set although ``transport = "outbox"`` ignores them.

    ``$PUBLISHER_SMTP_URL``, the password variable, and every ``[smtp]`` key whose
    value differs from its default: each one tells that the operator meant to send
    by SMTP (issue 8, item 18).
    """
    if config.newsletter.transport != Transport.OUTBOX:
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


def reference_markdown() -> str:
    """The configuration reference as a Markdown table, embedded verbatim in README.md."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "*required*" if s.required else f"`{_toml_literal(s.default)}`"
        lines.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(lines) + "\n"


# Settings whose empty value is filled in when the configuration is used.
_DERIVED: Mapping[str, Callable[[Config], Any]] = MappingProxyType(
    {
        "[newsletter].from_name": lambda c: c.from_name,
        "[newsletter].list_id": lambda c: c.list_id,
        "[web].base_url": lambda c: c.web_base_url,
        "[database].url": lambda c: _without_password(c.database_url),
    }
)


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
