"""Reading config.toml: every section validated against the table, every problem collected,
then the rules between keys (publisher.config.model.Config is only made when all hold)."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from publisher.config.model import (
    CONFIG_NAME,
    BuildConfig,
    Config,
    DatabaseConfig,
    DkimConfig,
    EditorConfig,
    FeedsConfig,
    InboundConfig,
    NewsletterConfig,
    ScheduleConfig,
    SiteConfig,
    SmtpConfig,
    WebConfig,
)
from publisher.config.table import SETTINGS
from publisher.config.validators import Invalid, describe
from publisher.errors import ConfigError, Location, Problem

_SECTIONS: Mapping[str, type] = MappingProxyType(
    {
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
    if not problems:
        config = Config(
            root=Path(root).resolve(),
            source=source,
            env=dict(os.environ if env is None else env),
            **sections,
        )
        problems = [Problem(where, message) for message in cross_key_problems(config)]
    if problems:
        raise ConfigError(problems, hint="See the configuration reference in README.md.")
    return config


def cross_key_problems(config: Config) -> list[str]:
    """The rules between keys, checked once every key is valid on its own."""
    found: list[str] = []
    output = config.output_path.resolve()
    # A build replaces the whole output folder: what lies inside it is lost, and a
    # folder of inputs that holds the output would read the output back as input.
    for key, path in (
        ("[build].posts_dir", config.posts_path),
        ("[build].templates_dir", config.templates_path),
    ):
        inside = _overlap(output, path.resolve())
        if inside:
            found.append(
                f"[build].output_dir {inside} {key}; a build replaces the whole output "
                "folder: give them separate folders"
            )
    if config.outbox_path.resolve().is_relative_to(output):
        found.append(
            "[newsletter].outbox_dir is inside [build].output_dir; a build replaces the "
            "output folder (and would publish the mail): put the outbox beside it"
        )
    lease, timeout = config.schedule.lease_seconds, config.smtp.timeout_seconds
    if lease < 3 * timeout:
        # publisher.deliver.sender claims what can be sent within a third of the lease,
        # each SMTP step taking up to the timeout; below one message the lease could run
        # out mid-send and another process take the row (G6).
        found.append(
            f"[schedule].lease_seconds ({lease}) must be at least 3 x [smtp].timeout_seconds "
            f"({timeout:g}), so one message can be sent within a lease: raise lease_seconds "
            "or lower timeout_seconds"
        )
    return found


def _overlap(output: Path, other: Path) -> str:
    """How ``output`` and ``other`` overlap, as words, or "" when they do not."""
    if output == other:
        return "is the same folder as"
    if output.is_relative_to(other):
        return "is inside"
    if other.is_relative_to(output):
        return "contains"
    return ""


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
                Problem(where, f"{setting.name}: expected {exc}, got {describe(table[key])}")
            )
    if len(values) != len(settings):
        return None
    return cls(**values)
