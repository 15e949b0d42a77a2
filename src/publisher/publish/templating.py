"""The one Jinja2 environment factory (RELIABILITY B1-B4, B8).

Autoescape is on for every HTML and XML template, undefined variables are
errors (``StrictUndefined``), templates come only from files through a loader
(so errors carry the template name and line), and post or subscriber text is
never compiled as a template: ``{{ 7*7 }}`` in a post renders literally.

Search path: the site's ``templates/`` first, then Publisher's default theme
(the ``templates/`` folder of this checkout), so a site overrides any template
by writing one with the same name.
"""

from __future__ import annotations

import os
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from publisher.config import Config
from publisher.errors import Location, Problem, ProblemsError, PublisherError

DEFAULT_TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


_ENDLESS = (
    "the template never ends: it extends, includes or calls itself (directly or through others)"
)


class TemplateError(ProblemsError):
    """A template could not be found, compiled or rendered."""

    title = "template"


def template_dirs(config: Config) -> list[Path]:
    """Where templates are looked up, most specific first."""
    dirs = [config.templates_path]
    if DEFAULT_TEMPLATES.resolve() != config.templates_path.resolve():
        dirs.append(DEFAULT_TEMPLATES)
    return [d for d in dirs if d.is_dir()]


def make_environment(config: Config) -> jinja2.Environment:
    """The Jinja2 environment every renderer uses."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
        autoescape=jinja2.select_autoescape(("html", "htm", "xml"), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    zone = config.site.timezone
    date_format = config.site.date_format

    def local(moment: datetime) -> datetime:
        return moment.astimezone(zone)

    env.filters["date"] = lambda moment, fmt=date_format: local(moment).strftime(fmt)
    env.filters["isoformat"] = lambda moment: local(moment).isoformat()
    env.globals["site_config"] = config.site
    return env


def render(env: jinja2.Environment, name: str, **context: Any) -> str:
    """Render template ``name``; errors name the template, its line and the search path."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(str(p) for p in getattr(env.loader, "searchpath", []))
        raise TemplateError(
            [Problem(Location(str(exc.name)), f"template not found (searched: {searched})")]
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        where = Location(exc.filename or exc.name or name, exc.lineno)
        raise TemplateError([Problem(where, f"syntax error: {exc.message}")]) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(
            [Problem(Location(_template_file(env, name)), f"undefined variable: {exc.message}")]
        ) from None
    except RecursionError as exc:
        where = _failing_line(env, name, exc)
        raise TemplateError([Problem(where, _ENDLESS)]) from None
    except PublisherError:
        raise
    except Exception as exc:
        # Any error inside a template ({{ 1/0 }}, a filter given a bad value) names the
        # template and line; Jinja's rewritten traceback carries them (B2, issue 8 item 11).
        where = _failing_line(env, name, exc)
        message = f"error while rendering: {type(exc).__name__}: {exc}"
        raise TemplateError([Problem(where, message)]) from None


def compile_all(env: jinja2.Environment) -> None:
    """Compile every template up front so a syntax error stops the build before any output (B2)."""
    problems = []
    for name in env.list_templates(filter_func=_is_template):
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = Location(exc.filename or name, exc.lineno)
            problems.append(Problem(where, f"syntax error: {exc.message}"))
    if problems:
        raise TemplateError(problems)


def _is_template(name: str) -> bool:
    return name.endswith((".html", ".xml", ".txt")) and not name.startswith("static/")


def _failing_line(env: jinja2.Environment, name: str, exc: BaseException) -> Location:
    """The innermost template file and line in ``exc``'s traceback (else the template)."""
    folders = [str(Path(folder)) for folder in getattr(env.loader, "searchpath", [])]
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if any(frame.filename.startswith(folder + os.sep) for folder in folders)
    ]
    if not frames:
        return Location(_template_file(env, name))
    return Location(frames[-1].filename, frames[-1].lineno)


def _template_file(env: jinja2.Environment, name: str) -> str:
    try:
        source = env.get_template(name).filename
    except jinja2.TemplateError:
        source = None
    return source or name
