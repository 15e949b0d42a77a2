"""``publisher editors``: who may sign in to the editor and which writing apps may post.

Thin like the other commands: load the config, open the store, call
publisher.store.editors. Passwords are read from standard input when it is not
a terminal (one line), or typed twice at a hidden prompt; they never appear in
arguments (``ps`` and shell history would show them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from publisher.cli.newsletter import _store
from publisher.config import Config, load_config
from publisher.errors import PublisherError
from publisher.store import InvalidAddress, normalize_email
from publisher.store.editors import SCOPES, Editor, EditorStore
from publisher.web.editor.auth import hash_password, new_bearer_token, password_problem


def _editors(ctx: click.Context) -> tuple[Config, EditorStore]:
    config = load_config(Path(ctx.obj.root))
    return config, EditorStore(_store(config))


def _read_password() -> str:
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    problem = password_problem(password)
    if problem:
        raise PublisherError(problem, hint="Choose a longer password (a passphrase works well).")
    return password


def _editor(store: EditorStore, name: str) -> Editor:
    editor = store.find_editor(name)
    if editor is None:
        raise PublisherError(
            f"no editor named {name!r}", hint="`publisher editors list` shows the editors."
        )
    return editor


def _scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise click.BadParameter(
            f"expected a comma-separated list of {', '.join(SCOPES)}, got {value!r}"
        )
    return scopes


@click.group("editors")
def editors_group() -> None:
    """Editors who sign in to the browser editor, and tokens for writing apps.

    \b
    Example:
        echo 'a long passphrase' | publisher editors add minji --email minji@example.com
        publisher editors token minji --scope create,media
    """


@editors_group.command("add")
@click.argument("name")
@click.option("--email", default=None, help="Where test emails of this editor go.")
@click.pass_context
def add_command(ctx: click.Context, name: str, email: str | None) -> None:
    """Create an editor; the password comes from standard input or a prompt.

    \b
    Example:
        echo 'a long passphrase' | publisher editors add minji --email minji@example.com
    """
    if not name.strip() or len(name) > 100 or any(ch.isspace() for ch in name):
        raise click.BadParameter("a name of 1-100 characters without spaces", param_hint="NAME")
    if email is not None:
        try:
            email = normalize_email(email)
        except InvalidAddress as exc:
            raise click.BadParameter(str(exc), param_hint="--email") from None
    _config, store = _editors(ctx)
    password = _read_password()
    store.add_editor(name, email, hash_password(password))
    click.echo(f"Added editor {name}.")


@editors_group.command("list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List editors and their live tokens.

    \b
    Example:
        publisher editors list
    """
    _config, store = _editors(ctx)
    editors = store.list_editors()
    if not editors:
        click.echo("No editors yet: add one with `publisher editors add NAME`.")
    for editor in editors:
        live = [t for t in store.list_tokens(editor.id) if not t[3]]
        tokens = ", ".join(f"#{t[0]} ({','.join(t[1])})" for t in live) or "none"
        click.echo(f"{editor.name}\t{editor.email or '-'}\ttokens: {tokens}")


@editors_group.command("remove")
@click.argument("name")
@click.pass_context
def remove_command(ctx: click.Context, name: str) -> None:
    """Remove an editor, ending their sessions and tokens.

    \b
    Example:
        echo 'a third long passphrase' | publisher editors add jisu
        publisher editors remove jisu
    """
    _config, store = _editors(ctx)
    if not store.remove_editor(name):
        _editor(store, name)
    click.echo(f"Removed editor {name}.")


@editors_group.command("password")
@click.argument("name")
@click.pass_context
def password_command(ctx: click.Context, name: str) -> None:
    """Set a new password (ends the editor's sessions).

    \b
    Example:
        echo 'another long passphrase' | publisher editors password minji
    """
    _config, store = _editors(ctx)
    _editor(store, name)
    store.set_password(name, hash_password(_read_password()))
    click.echo(f"Changed the password of {name}; their sessions have ended.")


@editors_group.command("token")
@click.argument("name")
@click.option(
    "--scope",
    "scope",
    default=",".join(SCOPES),
    show_default=True,
    help="Comma-separated scopes the token grants.",
)
@click.pass_context
def token_command(ctx: click.Context, name: str, scope: str) -> None:
    """Print a new Micropub bearer token, alone on standard output (it is stored hashed).

    \b
    Example:
        publisher editors token minji --scope create,update,media
    """
    scopes = _scopes(scope)
    _config, store = _editors(ctx)
    editor = _editor(store, name)
    token, digest = new_bearer_token()
    token_id = store.add_token(editor.id, digest, scopes)
    click.echo(token)
    click.echo(f"token #{token_id} for {name}: {','.join(scopes)}", err=True)


@editors_group.command("revoke")
@click.argument("name")
@click.option("--id", "token_id", type=int, default=None, help="Revoke only this token number.")
@click.pass_context
def revoke_command(ctx: click.Context, name: str, token_id: int | None) -> None:
    """Revoke an editor's tokens (all, or one with --id).

    \b
    Example:
        publisher editors revoke minji --id 1
    """
    _config, store = _editors(ctx)
    editor = _editor(store, name)
    count = store.revoke_tokens(editor.id, token_id)
    click.echo(f"Revoked {count} token(s) of {name}.")
    if token_id is not None and count == 0:
        sys.exit(1)
