"""``publisher run``: the scheduler as a long-running service, or one pass for cron.

The ``schedule`` library is only the trigger (STYLE habit 5, RELIABILITY L5): a
``schedule.Scheduler()`` instance, never the module default, calls
``Runner.tick`` every ``[schedule].poll_seconds``; everything the tick decides
comes from the database (publisher.schedule.runner). The job it runs never raises into
``schedule`` (G5). When the wall clock steps back, ``schedule`` would wait for the
lost time again (a 55-minute step made ``idle_seconds()`` 3,900; G8), so a wait
longer than one interval is cut short and the tick runs now; it is idempotent.

SIGTERM and SIGINT set one ``threading.Event``: the sender finishes and records
the message in flight, the tick ends, the process exits 0 (G2).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import schedule

from publisher import wiring
from publisher.cli.newsletter import mail_destination
from publisher.cli.signals import stop_on_signals
from publisher.config import load_config, smtp_unused_warning
from publisher.errors import PublisherError
from publisher.schedule.next_pass import next_pass, next_pass_lines
from publisher.schedule.runner import Runner, TickSummary, scheduler_status, status_lines
from publisher.store import utc_now

LOG_NAME = "publisher.run"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # UTC; messages show site-local times with their zone
MAX_WAIT_SECONDS = 1.0  # how long the loop sleeps at a time: signals are seen quickly


@click.command("run")
@click.option("--once", is_flag=True, help="Do one pass and exit (for cron or a systemd timer).")
@click.option("--status", "show_status", is_flag=True, help="Show what is due, change nothing.")
@click.option("-v", "--verbose", is_flag=True, help="Also log debug details.")
@click.pass_context
def run_command(ctx: click.Context, once: bool, show_status: bool, verbose: bool) -> None:
    """Publish due posts, then mail them: now, then every [schedule].poll_seconds.

    A post dated 09:00 appears on the blog and in the feeds at 09:00 and goes to
    subscribers right after, once, even across restarts or with two schedulers
    on one database. Logs go to stderr; SIGTERM or Ctrl-C finishes the message
    in flight and exits 0.

    \b
    Example:
        publisher run                 # a service (see README, "Running the scheduler")
        publisher run --once          # one pass, e.g. from cron every 5 minutes
        publisher run --status        # what the next pass would publish and mail; sends nothing
    """
    config = load_config(Path(ctx.obj.root))
    store = wiring.open_store(config, clock=utc_now)
    try:
        if show_status:
            for line in status_lines(config, scheduler_status(config, store, utc_now)):
                click.echo(line)
            for line in next_pass_lines(config, next_pass(config, store, utc_now)):
                click.echo(line)
            return
        with _logging(verbose) as log, stop_on_signals(_announcer(log)) as stop:
            warning = smtp_unused_warning(config)
            if warning:
                log.warning("%s", warning)
            composer = wiring.composer(config, store, utc_now, warn=log.warning)
            transports = wiring.transports(config)
            runner = Runner(config, store, utc_now, transports, log, composer=composer, stop=stop)
            if once:
                _report(runner.tick(), mail_destination(config))
            else:
                poll = config.schedule.poll_seconds
                log.info(
                    "scheduler %s started; a pass every %s s; mail goes to %s",
                    runner.name,
                    poll,
                    mail_destination(config),
                )
                serve(runner, config.schedule.poll_seconds, stop, log)
                log.info("scheduler %s stopped", runner.name)
    finally:
        store.close()


def serve(runner: Runner, poll_seconds: int, stop: threading.Event, log: logging.Logger) -> None:
    """Tick now (startup reconciliation: G3, G7), then every ``poll_seconds`` until ``stop``."""
    scheduler = schedule.Scheduler()
    scheduler.every(poll_seconds).seconds.do(safe_tick, runner, log)
    safe_tick(runner, log)
    while not stop.is_set():
        idle = scheduler.idle_seconds
        if idle is not None and idle > poll_seconds:
            log.warning("the clock stepped back %.0f s; running the pass now (G8)", idle)
            scheduler.run_all()
        else:
            scheduler.run_pending()
        idle = scheduler.idle_seconds
        stop.wait(min(max(idle if idle is not None else 0.0, 0.05), MAX_WAIT_SECONDS))


def safe_tick(runner: Runner, log: logging.Logger) -> None:
    """The ``schedule`` job: a tick that never raises into ``schedule`` (G5, L5).

    Job failures are recorded by the tick itself; this only catches what the
    tick could not record (the database is down), and says so.
    """
    try:
        runner.tick()
    except Exception as exc:
        message = exc.message if isinstance(exc, PublisherError) else repr(exc)
        log.error(
            "pass failed, retrying in the next one: %s",
            message,
            exc_info=not isinstance(exc, PublisherError),
        )


def _report(summary: TickSummary, destination: str) -> None:
    click.echo(f"{summary.line()}; mail to {destination}")
    for line in summary.renamed:
        click.echo(f"  {line}")
    for why in summary.waiting:
        click.echo(f"  waiting: {why}")
    if summary.errors:
        raise PublisherError(
            "; ".join(summary.errors),
            hint="Recorded in the database; the next run retries after a back-off "
            "(see `publisher run --status`).",
        )


@contextmanager
def _logging(verbose: bool) -> Iterator[logging.Logger]:
    """A logger writing to this process's stderr; removed again afterwards."""
    log = logging.getLogger(LOG_NAME)
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    try:
        yield log
    finally:
        log.removeHandler(handler)


def _announcer(log: logging.Logger) -> Callable[[str], None]:
    def announce(signal_name: str) -> None:
        log.info("%s: finishing the message in flight, then stopping", signal_name)

    return announce
