"""The command line: the only place that turns errors into exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from publisher import __version__
from publisher.errors import PublisherError


class SiteContext:
    """What every command shares: the site folder given by --site."""

    def __init__(self, root: Path) -> None:
        self.root = root


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n    publisher --site mysite build",
)
@click.option(
    "--site",
    "site_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Site folder holding config.toml, posts/ and templates/.",
)
@click.version_option(__version__, prog_name="publisher")
@click.pass_context
def cli(ctx: click.Context, site_dir: Path) -> None:
    """Publisher: Markdown posts to a blog, RSS/Atom feeds and email newsletters."""
    ctx.obj = SiteContext(site_dir)


def _register_commands() -> None:
    # Each command lives in the module of its stage; registered here in one place.
    # Imported here, not at the top, so `publisher --help` stays fast.
    from publisher.cli import inbound as cli_inbound
    from publisher.cli import newsletter as cli_newsletter
    from publisher.cli.build import (
        build_command,
        config_command,
        new_command,
        preview_command,
        serve_command,
    )
    from publisher.cli.editors import editors_group
    from publisher.cli.importing import import_command, rename_command
    from publisher.cli.run import run_command
    from publisher.cli.web import web_command

    for command in (build_command, new_command, serve_command, preview_command, config_command):
        cli.add_command(command)
    cli_newsletter.register(cli)  # subscribers, send, status, migrate
    cli.add_command(run_command)
    cli.add_command(web_command)
    for command in cli_inbound.COMMANDS:  # inbound, suppressions (issue 12)
        cli.add_command(command)
    cli.add_command(import_command)
    cli.add_command(rename_command)
    cli.add_command(editors_group)


def main() -> None:
    """Entry point: run the CLI, print PublisherErrors cleanly, exit non-zero."""
    _register_commands()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PublisherError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        sys.exit(1)
    sys.exit(0)
