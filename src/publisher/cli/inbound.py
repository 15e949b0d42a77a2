"""Commands of the inbound loop: ``inbound`` (pipe and listener) and ``suppressions``.

``publisher inbound`` speaks the MTA's exit codes (sysexits.h): 0 when the
message was processed or deliberately ignored, 75 (``EX_TEMPFAIL``) when the
database or the configuration is unusable, so the MTA keeps the message and
retries: a report is never lost.
"""

from __future__ import annotations

import csv
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import click

from publisher.cli.signals import stop_on_signals
from publisher.config import Config, load_config
from publisher.deliver.tokens import InvalidToken, Purpose, make_signer
from publisher.errors import PublisherError
from publisher.inbound.handler import Handler, Settings
from publisher.inbound.listener import Listener
from publisher.store import InvalidAddress, Store, normalize_email, utc_now
from publisher.store.bounces import BounceStore, Suppression, SuppressionReason

EX_TEMPFAIL = 75  # sysexits.h: the MTA queues the message and tries again


def _config(ctx: click.Context) -> Config:
    return load_config(Path(ctx.obj.root))


def _store(config: Config) -> Store:
    store = Store.open(config.database_url, clock=utc_now)
    click.get_current_context().call_on_close(store.close)
    return store


def _token_checker(config: Config, store: Store) -> Callable[[str], int | None]:
    signer = make_signer(config, store, utc_now)

    def check(token: str) -> int | None:
        try:
            return signer.verify(token, Purpose.UNSUBSCRIBE, None)[0]
        except InvalidToken:
            return None

    return check


def _handler(config: Config, store: Store) -> Handler:
    return Handler(store, Settings.from_config(config, _token_checker(config, store)))


def _log_to_stderr() -> None:
    logger = logging.getLogger("publisher.inbound")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("publisher inbound: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


# --- inbound ---------------------------------------------------------------------------------


@click.command("inbound")
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    metavar="ADDRESS",
    help="The envelope recipient (Postfix pipe: ${original_recipient}); repeatable.",
)
@click.option(
    "--listen", metavar="HOST:PORT", help="Run an LMTP receiver instead of reading stdin."
)
@click.option("--smtp", "plain_smtp", is_flag=True, help="With --listen: speak SMTP, not LMTP.")
@click.pass_context
def inbound_command(
    ctx: click.Context, recipients: tuple[str, ...], listen: str | None, plain_smtp: bool
) -> None:
    """Read a bounce, complaint or unsubscribe mail and apply it.

    Without --listen, reads ONE message from standard input (Postfix pipe,
    .forward, procmail) and exits 0 when it was processed or ignored, 75 when
    the database is unavailable (the MTA retries). See README "Inbound mail".

    \b
    Example:
        publisher inbound --recipient bounces@blog.example.com < examples/inbound/bounce.eml
        publisher inbound --listen 127.0.0.1:2424
    """
    _log_to_stderr()
    if listen:
        _listen(ctx, listen, lmtp=not plain_smtp)
        return
    try:
        config = _config(ctx)
        raw = _read_stdin(config.inbound.max_message_bytes)
        if raw is None:
            click.echo(
                f"publisher inbound: ignored: message larger than "
                f"[inbound].max_message_bytes ({config.inbound.max_message_bytes})",
                err=True,
            )
            return
        store = _store(config)
        _handler(config, store).mail(raw, list(recipients), "pipe")  # logs its one line
    except PublisherError as exc:  # StoreError, ConfigError: keep the message queued
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        click.echo("publisher inbound: temporary failure, exit 75 (the MTA will retry)", err=True)
        sys.exit(EX_TEMPFAIL)


def _read_stdin(limit: int) -> bytes | None:
    """At most ``limit`` bytes of stdin; None when there is more (the rest is drained)."""
    stream = sys.stdin.buffer
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data
    while stream.read(1 << 20):
        pass
    return None


def _listen(ctx: click.Context, listen: str, *, lmtp: bool) -> None:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise PublisherError(
            f"--listen {listen!r}: expected HOST:PORT such as 127.0.0.1:2424",
        )
    config = _config(ctx)
    store = _store(config)
    handler = _handler(config, store)
    listener = Listener(
        handler.mail,
        handler.settings.accepts,
        host=host.strip("[]") or "127.0.0.1",
        port=int(port_text),
        lmtp=lmtp,
        max_bytes=config.inbound.max_message_bytes,
    )
    listener.start()
    kind = "LMTP" if lmtp else "SMTP"
    click.echo(f"publisher inbound: {kind} listening on {host}:{port_text}", err=True)
    with stop_on_signals(lambda name: click.echo(f"{name}: stopping", err=True)) as stop:
        _wait(stop)
    listener.stop()


def _wait(stop: threading.Event) -> None:
    while not stop.wait(0.5):
        pass


# --- suppressions ----------------------------------------------------------------------------


@click.group("suppressions")
def suppressions_group() -> None:
    """The suppression list: addresses never mailed, whatever sign-ups or imports say.

    \b
    Example:
        publisher suppressions add spam-trap@example.com
        publisher suppressions export suppressions.csv
    """


@suppressions_group.command("list")
@click.pass_context
def suppressions_list(ctx: click.Context) -> None:
    """List suppressed addresses with reason, source and date.

    \b
    Example:
        publisher suppressions list
    """
    bounces = BounceStore(_store(_config(ctx)))
    for s in bounces.iter_suppressions():
        click.echo(f"{s.email}\t{s.reason}\t{s.source}\t{s.created_at:%Y-%m-%d %H:%M}")


@suppressions_group.command("add")
@click.argument("addresses", nargs=-1, required=True)
@click.option("--note", default="", help="Why (kept with the entry).")
@click.pass_context
def suppressions_add(ctx: click.Context, addresses: tuple[str, ...], note: str) -> None:
    """Suppress addresses: they are skipped at send time and never re-activated.

    \b
    Example:
        publisher suppressions add former@example.com --note "asked by phone"
    """
    normalized = [_address(a) for a in addresses]
    bounces = BounceStore(_store(_config(ctx)))
    for address in normalized:
        added = bounces.suppress(address, SuppressionReason.OPERATOR, "cli", note)
        click.echo(f"{address}: {'suppressed' if added else 'already suppressed'}")


@suppressions_group.command("remove")
@click.argument("addresses", nargs=-1, required=True)
@click.pass_context
def suppressions_remove(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Take addresses off the list (their subscriber status is not changed).

    \b
    Example:
        publisher suppressions remove former@example.com
    """
    normalized = [_address(a) for a in addresses]
    bounces = BounceStore(_store(_config(ctx)))
    for address in normalized:
        removed = bounces.unsuppress(address)
        click.echo(f"{address}: {'removed' if removed else 'was not suppressed'}")


@suppressions_group.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8-sig"))
@click.pass_context
def suppressions_import(ctx: click.Context, file: IO[str]) -> None:
    """Suppress every address of a CSV (an ``email`` column, or the first column).

    All or nothing: a bad address stops the import with its line number.

    \b
    Example:
        publisher suppressions import suppressions.csv
    """
    addresses = _csv_addresses(file)
    bounces = BounceStore(_store(_config(ctx)))
    added = bounces.suppress_many(addresses, SuppressionReason.IMPORT, f"import:{file.name}"[:200])
    click.echo(f"{added} suppressed, {len(addresses) - added} already on the list")


@suppressions_group.command("export")
@click.argument("file", type=click.File("w", encoding="utf-8"), default="-")
@click.pass_context
def suppressions_export(ctx: click.Context, file: IO[str]) -> None:
    """Write the list as CSV (email, reason, source, detail, created_at) to FILE or stdout.

    \b
    Example:
        publisher suppressions export suppressions.csv
    """
    bounces = BounceStore(_store(_config(ctx)))
    _write_csv(bounces.iter_suppressions(), file)


def _address(raw: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidAddress as exc:
        raise PublisherError(exc.message, hint="Nothing was changed.") from None


def _csv_addresses(file: IO[str]) -> list[str]:
    rows = list(csv.reader(file))
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    column = header.index("email") if "email" in header else 0
    body = rows[1:] if "email" in header else rows
    first_line = 2 if "email" in header else 1
    found: list[str] = []
    for number, row in enumerate(body, start=first_line):
        if not row or not "".join(row).strip():
            continue
        try:
            found.append(normalize_email(row[column] if column < len(row) else ""))
        except InvalidAddress as exc:
            raise PublisherError(
                f"{file.name}:{number}: {exc.message}", hint="Nothing was imported."
            ) from None
    return list(dict.fromkeys(found))


CSV_FIELDS = ("email", "reason", "source", "detail", "created_at")


def _write_csv(rows: Iterable[Suppression], out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in rows:
        writer.writerow([s.email, s.reason, s.source, s.detail, s.created_at.isoformat()])


COMMANDS = (inbound_command, suppressions_group)
