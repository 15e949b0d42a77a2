"""Commands of the deliver half: subscribers, send, status, migrate.

Thin: each command loads the config, opens the store, calls one stage and
prints. Errors are PublisherErrors; publisher.cli.main turns them into exit 1.
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

from publisher import wiring
from publisher.cli.signals import stop_on_signals
from publisher.config import Config, load_config, smtp_unused_warning
from publisher.deliver.proof import send_proof
from publisher.deliver.sender import (
    Progress,
    SendPolicy,
    SendReport,
    StopReason,
    describe_counts,
    new_issue,
    resume_issue,
    send_issue,
)
from publisher.deliver.subscriber_imports import FORMATS as IMPORT_FORMATS
from publisher.deliver.subscriber_imports import read_export
from publisher.deliver.transports import Outcome, smtp_settings
from publisher.errors import ContentError, Location, Problem, ProblemsError, PublisherError
from publisher.publish.content import Post, read_posts
from publisher.publish.newsletter import check_issue, render_post_issue
from publisher.publish.site import Site, build_site
from publisher.store import (
    Consent,
    ConsentMethod,
    DeliveryCounts,
    DeliveryStatus,
    InvalidAddress,
    Issue,
    IssueStatus,
    NewIssue,
    NewSubscriber,
    Store,
    Subscriber,
    SubscriberStatus,
    normalize_email,
    utc_now,
)
from publisher.store.bounces import COMPLAINT_LIMIT, BounceStore, Feedback, complaint_warning


class ImportProblems(ProblemsError):
    """Bad rows in a subscriber CSV; every one is listed with its line."""

    title = "import"


def _config(ctx: click.Context) -> Config:
    return load_config(Path(ctx.obj.root))


def _store(config: Config, *, migrate: bool = False) -> Store:
    """Open the store for this command; it is closed when the command ends."""
    store = wiring.open_store(config, clock=utc_now, migrate=migrate)
    click.get_current_context().call_on_close(store.close)
    return store


def _warn(message: str) -> None:
    click.secho(f"warning: {message}", fg="yellow", err=True)


def mail_destination(config: Config) -> str:
    """Where mail goes, named in every send and run summary (issue 8, item 18)."""
    if config.newsletter.transport == "outbox":
        return f"the outbox folder {config.outbox_path}/ (one .eml file per message)"
    settings = smtp_settings(config)  # [smtp] with $PUBLISHER_SMTP_URL applied
    return f"SMTP server {settings.host}:{settings.port} ({settings.security})"


def warn_unused_smtp(config: Config) -> None:
    """Warn when SMTP settings are present but the outbox transport ignores them."""
    warning = smtp_unused_warning(config)
    if warning:
        _warn(warning)


# --- subscribers -----------------------------------------------------------------------------


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage subscribers: add, remove, list, import and export.

    \b
    Example:
        publisher subscribers add reader@example.com --category 세계
        publisher subscribers import readers.csv
    """


@subscribers_group.command("add")
@click.argument("addresses", nargs=-1, required=True)
@click.option(
    "--category", "categories", multiple=True, help="Only mail posts of this category (repeat)."
)
@click.pass_context
def add_command(
    ctx: click.Context, addresses: tuple[str, ...], categories: tuple[str, ...]
) -> None:
    """Add confirmed subscribers (the operator vouches for their consent).

    Nothing is added when any address is invalid. Existing addresses are left
    as they are: an unsubscribed reader is not resubscribed.

    \b
    Example:
        publisher subscribers add a@example.com b@example.com --category 기술
    """
    normalized = _all_valid(addresses)
    config = _config(ctx)
    store = _store(config)
    consent = Consent(ConsentMethod.OPERATOR, source="publisher subscribers add")
    bounces = BounceStore(store)
    for address in normalized:
        if bounces.suppressed(address):
            click.echo(
                f"{address} is suppressed; not added (`publisher suppressions remove` first)"
            )
            continue
        subscriber, created = store.add_subscriber(address, consent, categories=categories)
        if created:
            click.echo(f"added {subscriber.email}")
        else:
            click.echo(f"{subscriber.email} already exists ({subscriber.status}); left unchanged")


def _all_valid(addresses: tuple[str, ...]) -> list[str]:
    normalized, problems = [], []
    for address in addresses:
        try:
            normalized.append(normalize_email(address))
        except InvalidAddress as exc:
            problems.append(exc.message)
    if problems:
        raise PublisherError("\n".join(problems), hint="Nothing was added; fix the addresses.")
    return normalized


@subscribers_group.command("remove")
@click.argument("addresses", nargs=-1, required=True)
@click.pass_context
def remove_command(ctx: click.Context, addresses: tuple[str, ...]) -> None:
    """Unsubscribe addresses (kept as unsubscribed, so an import cannot re-add them).

    \b
    Example:
        publisher subscribers remove reader@example.com
    """
    store = _store(_config(ctx))
    for address in _all_valid(addresses):
        found = store.unsubscribe(address)
        click.echo(f"unsubscribed {address}" if found else f"{address}: not a subscriber")


@subscribers_group.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in SubscriberStatus]),
    help="Only subscribers with this status.",
)
@click.pass_context
def list_command(ctx: click.Context, status: str | None) -> None:
    """List subscribers: address, status and categories (streamed, any number).

    \b
    Example:
        publisher subscribers list --status active
    """
    store = _store(_config(ctx))
    wanted = SubscriberStatus(status) if status else None
    count = 0
    for subscriber in store.iter_subscribers(wanted):
        cats = ",".join(subscriber.categories) or "*"
        click.echo(f"{subscriber.email}\t{subscriber.status}\t{cats}")
        count += 1
    click.echo(f"{count} subscribers", err=True)


@subscribers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows and report the others.")
@click.option(
    "--from",
    "tool",
    type=click.Choice(["csv", *IMPORT_FORMATS]),
    default="csv",
    show_default=True,
    help="Whose export FILE is (their columns and states are read).",
)
@click.pass_context
def import_command(ctx: click.Context, file: Path, skip_invalid: bool, tool: str) -> None:
    """Import subscribers from a CSV with an `email` column, or from another tool's export.

    With `--from csv`: confirmed subscribers; an optional `categories` column lists
    categories separated by `;` or `,`. With `--from substack|ghost|buttondown|
    mailchimp|listmonk`: the tool's own columns; a reader is active only when the
    export says they confirmed (else pending), unsubscribed and cleaned addresses are
    kept as suppressed (never mailed), and lists, labels or tags become categories.
    All rows are checked first; a bad row stops the import and NOTHING is imported
    (every bad row is reported with its line), unless --skip-invalid. The import is
    one transaction. Consent is recorded as method "import", with the tool and the
    file name as its source and the export's sign-up date.

    \b
    Example:
        publisher subscribers import readers.csv
        publisher subscribers import examples/import/mailchimp-subscribed.csv --from mailchimp
        publisher subscribers import readers.csv --skip-invalid
    """
    if tool == "csv":
        rows, problems = read_subscriber_csv(file)
    else:
        rows, problems = read_export(file, tool)
    if problems and not skip_invalid:
        raise ImportProblems(problems, hint="Nothing was imported; fix the rows or --skip-invalid.")
    for problem in problems:
        _warn(f"skipped {problem}")
    store = _store(_config(ctx))
    rows, suppressed = _without_suppressed(store, rows)
    source = file.name if tool == "csv" else f"imported from {tool} ({file.name})"
    result = store.import_subscribers(rows, Consent(ConsentMethod.IMPORT, source=source))
    click.echo(
        f"imported {result.added} subscribers from {file.name}; "
        f"{result.existing} already present, {len(problems)} invalid rows skipped"
        + (f", {suppressed} suppressed addresses skipped" if suppressed else "")
    )
    if tool != "csv":
        states = Counter(str(row.status) for row in rows)
        click.echo(
            "states in the export: "
            + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
            + f"; {result.suppressed} existing subscribers suppressed"
        )
        _warn_unknown_categories(rows, _config(ctx))


def _warn_unknown_categories(rows: list[NewSubscriber], config: Config) -> None:
    """Tags that are no category of this site restrict a reader to posts nobody writes."""
    known = {post.category for post in read_posts(config).posts if post.category}
    unknown = sorted({c for row in rows for c in row.categories} - known)
    if unknown:
        _warn(
            f"categories this site has no posts in: {', '.join(unknown)}; readers with only "
            "those get no issue until a post has one (change them in the file, or rename the "
            "category in your posts)"
        )


def _without_suppressed(store: Store, rows: list[NewSubscriber]) -> tuple[list[NewSubscriber], int]:
    """Rows whose address is not on the suppression list (issue 12: imports never undo it)."""
    listed = {s.email for s in BounceStore(store).iter_suppressions()}
    kept = [r for r in rows if r.email not in listed]
    return kept, len(rows) - len(kept)


def read_subscriber_csv(file: Path) -> tuple[list[NewSubscriber], list[Problem]]:
    """Valid rows (normalized, first occurrence only) and a located problem per bad row."""
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PublisherError(f"{shown}: not valid UTF-8 at byte {exc.start}") from None
    reader = csv.DictReader(text.splitlines(keepends=True))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "email" not in fields:
        raise PublisherError(f"{shown}:1: no 'email' column (found: {', '.join(fields) or 'none'})")
    reader.fieldnames = fields
    rows: list[NewSubscriber] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for record in reader:
        where = Location(shown, reader.line_num)
        try:
            address = normalize_email((record.get("email") or "").strip())
        except InvalidAddress as exc:
            problems.append(Problem(where, exc.message))
            continue
        if address not in seen:
            seen.add(address)
            rows.append(NewSubscriber(address, _split_categories(record.get("categories") or "")))
    return rows, problems


def _split_categories(value: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in value.replace(";", ",").split(",") if c.strip())


@subscribers_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def export_command(ctx: click.Context, file: Path | None) -> None:
    """Export all subscribers with status and consent record as CSV (stdout or FILE).

    \b
    Example:
        publisher subscribers export subscribers.csv
    """
    store = _store(_config(ctx))
    if file is None:
        _write_csv(sys.stdout, store)
        return
    with file.open("w", encoding="utf-8", newline="") as handle:
        count = _write_csv(handle, store)
    click.echo(f"exported {count} subscribers to {file}", err=True)


EXPORT_FIELDS = (
    "email",
    "status",
    "categories",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "bounce_count",
    "consent_at",
    "consent_method",
    "consent_source",
    "consent_text_version",
)


def _write_csv(handle: IO[str], store: Store) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    count = 0
    for s in store.iter_subscribers():
        writer.writerow(_export_row(s))
        count += 1
    return count


def _export_row(s: Subscriber) -> list[str]:
    def when(value: object) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else ""

    consent = s.consent
    return [
        s.email,
        s.status,
        ";".join(s.categories),
        when(s.created_at),
        when(s.confirmed_at),
        when(s.unsubscribed_at),
        str(s.bounce_count),
        when(consent.at) if consent else "",
        consent.method if consent else "",
        consent.source if consent else "",
        consent.text_version if consent else "",
    ]


# --- send --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    config: Config
    site: Site
    post: Post


@click.command("send")
@click.option("--post", "post_ref", required=True, help="Slug or file path of the post to mail.")
@click.option("--dry-run", is_flag=True, help="Show who would receive it; send nothing.")
@click.option("--test-to", metavar="ADDRESS", help="Send one copy to ADDRESS only (no records).")
@click.option("--resume", is_flag=True, help="Continue an issue that was paused.")
@click.option(
    "--release-held",
    is_flag=True,
    help="Send the issue's in-doubt messages again (same Message-ID), then continue.",
)
@click.option(
    "--address", metavar="ADDRESS", help="With --release-held: only this subscriber's message."
)
@click.pass_context
def send_command(
    ctx: click.Context,
    post_ref: str,
    dry_run: bool,
    test_to: str | None,
    resume: bool,
    release_held: bool,
    address: str | None,
) -> None:
    """Mail a published post to its subscribers, or resume its unfinished issue.

    Safe to run again: every subscriber gets the issue once (a message whose
    reply was lost may be resent once with the same Message-ID; see
    [newsletter].in_doubt_policy). SIGTERM or Ctrl-C finishes the message in
    flight and stops cleanly; run the command again to continue.

    Messages in doubt (the server may have them) that are held are listed by
    `publisher status`; --release-held sends them again, once, with the same
    Message-ID (--address for one of them). A paused issue that nobody has
    been mailed yet is re-rendered from the post on --resume.

    \b
    Example:
        publisher send --post us-china-tech-gap --dry-run
        publisher send --post posts/2025-06-20-us-china-tech-gap.md --test-to me@example.com
        publisher send --post us-china-tech-gap
        publisher send --post us-china-tech-gap --release-held --address reader@example.com
    """
    if address is not None and not release_held:
        raise click.UsageError("--address goes with --release-held")
    prepared = _prepare(_config(ctx), post_ref)
    config = prepared.config
    warn_unused_smtp(config)
    rendered = render_post_issue(prepared.site, prepared.post)
    for warning in check_issue(rendered, config):
        _warn(warning)
    store = _store(config)
    if test_to:
        _send_test(config, store, new_issue(rendered, (prepared.post,)), test_to)
        return
    _refuse_a_renamed_post(store, prepared, rendered.key)
    if dry_run:
        _dry_run(store, rendered.key, rendered.subject, prepared.post)
        click.echo(f"mail would go to {mail_destination(config)}")
        return
    issue, created = store.create_issue(new_issue(rendered, (prepared.post,)))
    if not created and issue.digest != rendered.digest:
        _warn(
            f"{prepared.post.source} changed since issue {issue.key} was created; "
            "sending the stored version so every reader gets the same issue (B6)"
        )
    if resume and issue.status == IssueStatus.PAUSED:
        issue = _refresh_paused(store, issue, new_issue(rendered, (prepared.post,)))
        resume_issue(store, issue.id)
    if release_held:
        _release_held(store, issue, address)
    _run_send(config, store, issue)


def _refresh_paused(store: Store, issue: Issue, fresh: NewIssue) -> Issue:
    """A paused issue nobody has a copy of takes the post as it is now (issue 8: a title
    the message builder refused, fixed since); B6 holds, as nobody got the old body."""
    if issue.digest == fresh.digest or not store.replace_issue_body(issue.id, fresh):
        return issue
    click.echo(f"issue {issue.key}: nobody had been mailed; the issue is re-rendered from the post")
    refreshed = store.get_issue(issue.id)
    assert refreshed is not None
    return refreshed


def _release_held(store: Store, issue: Issue, address: str | None) -> None:
    email = normalize_email(address) if address is not None else None
    released = store.release_held(issue.id, email)
    if released == 0:  # nothing to do is not an error: the command stays safe to rerun
        who = f" for {email}" if email else ""
        _warn(
            f"issue {issue.key}: no message in doubt{who}, nothing to release "
            "(`publisher status` lists them by address)"
        )
        return
    click.echo(f"issue {issue.key}: {released} held messages released; sending them again")


def _prepare(config: Config, post_ref: str) -> _Prepared:
    result = read_posts(config)
    if result.problems:
        raise ContentError(result.problems)
    post = _find_post(config, result.posts, post_ref)
    site = build_site(config, result.posts, utc_now())
    if post not in site.posts:
        state = "a draft" if post.draft else f"scheduled for {post.date:%Y-%m-%d %H:%M %Z}"
        raise PublisherError(
            f"{post.source} is {state}; only published posts are mailed (A20)",
            hint="Publish it first; `publisher run` mails scheduled posts when they go live.",
        )
    return _Prepared(config, site, post)


def _refuse_a_renamed_post(store: Store, prepared: _Prepared, key: str) -> None:
    """A post mailed under its old slug is not mailed again under its new one (issue 8, 1)."""
    from publisher.schedule.identity import find_renames

    post, site = prepared.post, prepared.site
    renames = find_renames((*site.posts, *site.hidden), store.published_posts())
    for slug in (post.slug, *(r.old for r in renames if r.new == post.slug)):
        for issue_id in store.issues_with_post(slug):
            issue = store.get_issue(issue_id)
            if issue is not None and issue.key.startswith("post:") and issue.key != key:
                raise PublisherError(
                    f"{post.source} was already mailed as issue {issue.key} (the post was "
                    "renamed since); it is not sent again",
                    hint=f"`publisher status` shows issue {issue.key}; `publisher run --once` "
                    "finishes it if it is not done.",
                )


def _find_post(config: Config, posts: tuple[Post, ...], ref: str) -> Post:
    target = (config.root / ref).resolve() if ref.endswith(".md") else None
    for post in posts:
        if post.slug == ref or (target and (config.root / post.source).resolve() == target):
            return post
    raise PublisherError(
        f"no post with slug or path {ref!r}",
        hint="Give the slug (e.g. us-china-tech-gap) or the file path (posts/….md).",
    )


def _dry_run(store: Store, key: str, subject: str, post: Post) -> None:
    existing = store.find_issue(key)
    click.echo(f"issue {key}: {subject}")
    if existing is not None and existing.snapshot_at is not None:
        counts = store.counts(existing.id)
        click.echo(f"already started: {_summary(counts)}")
        click.echo(f"would send {counts.unfinished} more messages (dry run, nothing sent)")
        return
    categories = (post.category,) if post.category else ()
    count = store.count_recipients(categories)
    click.echo(f"would send to {count} subscribers (dry run, nothing sent)")


def _send_test(config: Config, store: Store, new: NewIssue, address: str) -> None:
    """One copy to ``address``: the same body and headers, no delivery rows."""
    composer = wiring.composer(config, store, utc_now, warn=_warn)
    to, result = send_proof(config, composer, new, address, utc_now)
    if result.outcome != Outcome.SENT:
        raise PublisherError(f"test message to {to} not sent ({result.outcome}): {result.reply}")
    click.echo(
        f"test message sent to {to} via {mail_destination(config)}: {result.reply or result.code}"
    )


def _run_send(config: Config, store: Store, issue: Issue) -> None:
    composer = wiring.composer(config, store, utc_now, warn=_warn)
    policy = SendPolicy.from_config(config)
    click.echo(f"sending issue {issue.key}: {issue.subject}", err=True)
    with stop_on_signals(_announce_stop) as stop:
        report = send_issue(
            store,
            issue.id,
            wiring.transports(config),
            composer,
            policy,
            stop=stop,
            progress=_progress_printer(),
            clock=utc_now,
        )
    _print_report(issue, report)
    click.echo(f"mail went to {mail_destination(config)}")


def _announce_stop(signal_name: str) -> None:
    click.echo(f"{signal_name}: finishing the message in flight", err=True)


def _progress_printer() -> Callable[[Progress], None]:
    def show(p: Progress) -> None:
        done = p.sent + p.failed + p.in_doubt + p.skipped
        step = max(1, p.total // 20)
        if done % step == 0 or done == p.total:
            click.echo(f"  … {done}/{p.total}: sent {p.sent}", err=True)

    return show


def _print_report(issue: Issue, report: SendReport) -> None:
    if report.recovered:
        _warn(f"{report.recovered} messages of an interrupted run are in doubt (G1)")
    if report.reclaimed:
        click.echo(
            f"{report.reclaimed} messages an interrupted run had claimed but not started "
            "were queued again",
            err=True,
        )
    if report.withdrawn:
        click.echo(
            f"{report.withdrawn} messages were withdrawn before DATA: "
            "the subscriber unsubscribed meanwhile",
            err=True,
        )
    click.echo(
        f"issue {issue.key}: this run sent {report.sent}, failed {report.failed_temp} "
        f"temporarily and {report.failed_perm} permanently, skipped {report.skipped}, "
        f"{report.in_doubt} in doubt ({report.resent} queued for one resend)"
    )
    click.echo(f"issue totals: {_summary(report.counts)}")
    in_doubt = report.counts[DeliveryStatus.IN_DOUBT]
    if in_doubt:
        click.secho(
            f"{in_doubt} messages are in doubt: the server may have them; see `publisher status`",
            fg="yellow",
        )
    _finish(issue, report)


def _finish(issue: Issue, report: SendReport) -> None:
    if report.done:
        click.echo("issue complete")
    elif report.stop is None and report.held and report.counts.unfinished == 0:
        slug = issue.post_slugs[0] if issue.post_slugs else "SLUG"
        click.echo(
            f"issue not complete: {report.held} messages in doubt are held for you; "
            f"check the server's logs, then `publisher send --post {slug} --release-held` "
            "sends them again"
        )
    elif report.stop == StopReason.PAUSED:
        raise PublisherError(
            f"issue paused: {report.detail}",
            hint="Fix the cause, then run the same command with --resume.",
        )
    elif report.stop == StopReason.SERVER_DOWN:
        raise PublisherError(report.detail, hint="Nothing was lost; run the command again later.")
    elif report.stop == StopReason.THROTTLED:
        click.echo(
            f"{report.detail}; run the command again then (`publisher run` waits on its own)"
        )
    elif report.stop is not None:
        click.echo(f"stopped: {report.detail}")
    elif report.next_retry_at is not None:
        click.echo(
            f"{report.counts.unfinished} messages wait for a retry from "
            f"{report.next_retry_at:%Y-%m-%d %H:%M} UTC; run the command again then "
            "(`publisher run` does it on its own)"
        )


def _summary(counts: DeliveryCounts) -> str:
    return describe_counts(counts, label_first=True, empty="no deliveries")


# --- status and migrate -------------------------------------------------------------------------


@click.command("status")
@click.pass_context
def status_command(ctx: click.Context) -> None:
    """Show what is due next, and every issue with its deliveries by state.

    The first lines are the scheduler's: the next post to publish, the next
    digest, each job's last run and error, then what the next pass would
    publish and mail (post, time, issue, recipients) and the drafts; nothing
    is sent. Messages in doubt are highlighted.

    \b
    Example:
        publisher status
    """
    # Imported here: the scheduler pulls in the whole build, which other commands do not need.
    from publisher.schedule.next_pass import next_pass, next_pass_lines
    from publisher.schedule.runner import scheduler_status, status_lines

    config = _config(ctx)
    store = _store(config)
    for line in status_lines(config, scheduler_status(config, store, utc_now)):
        click.echo(line)
    for line in next_pass_lines(config, next_pass(config, store, utc_now)):
        click.echo(line)
    issues = store.list_issues()
    if not issues:
        click.echo("no issues yet")
    for issue in issues:
        counts = store.counts(issue.id)
        click.echo(f"{issue.key} [{issue.status}] {issue.subject}")
        click.echo(f"  {_summary(counts)}")
        if issue.pause_reason:
            click.secho(f"  paused: {issue.pause_reason}", fg="red")
        if counts[DeliveryStatus.IN_DOUBT]:
            click.secho(
                f"  IN DOUBT: {counts[DeliveryStatus.IN_DOUBT]} (the server may have them)",
                fg="yellow",
                bold=True,
            )
        _show_flagged(store, issue)
        _print_feedback(BounceStore(store).feedback(issue.id))
    click.echo(
        f"subscribers: {store.count_subscribers(SubscriberStatus.ACTIVE)} active, "
        f"{store.count_subscribers()} in all"
    )


def _show_flagged(store: Store, issue: Issue) -> None:
    """In-doubt messages by address, and those sent more than once (issue 8)."""
    limit = 50
    flagged = store.flagged_deliveries(issue.id, limit=limit + 1)
    for row in flagged[:limit]:
        if row.status == DeliveryStatus.IN_DOUBT:
            again = ", already re-sent once" if row.resent else ""
            click.secho(f"    in doubt: {row.email}{again}", fg="yellow")
        else:
            click.echo(f"    re-sent (same Message-ID): {row.email} ({row.status})")
    if len(flagged) > limit:
        click.echo(f"    … more than {limit}; `publisher subscribers list` has every address")
    if any(row.status == DeliveryStatus.IN_DOUBT for row in flagged):
        slug = issue.post_slugs[0] if issue.post_slugs else "SLUG"
        click.echo(f"    release: publisher send --post {slug} --release-held [--address ADDR]")


def _print_feedback(feedback: Feedback) -> None:
    """Bounces and complaints of one issue (issue 12), with Gmail's/Yahoo's thresholds."""
    click.echo(
        f"  reports: bounces {feedback.hard} hard, {feedback.soft} soft; complaints "
        f"{feedback.complaints} ({feedback.complaint_rate:.2%} of {feedback.delivered} "
        f"delivered); unsubscribed by mail {feedback.unsubscribes}"
    )
    warning = complaint_warning(feedback)
    if warning:
        limit = feedback.complaint_rate >= COMPLAINT_LIMIT
        click.secho(f"  WARNING: {warning}", fg="red" if limit else "yellow", bold=limit)


@click.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the database schema (back the database up first).

    \b
    Example:
        publisher migrate
    """
    store = _store(_config(ctx), migrate=True)
    click.echo(f"database {store.name} is at schema version {store.schema_version()}")


COMMANDS = (subscribers_group, send_command, status_command, migrate_command)


def register(group: click.Group) -> None:
    """Add the newsletter commands to the main CLI group."""
    for command in COMMANDS:
        group.add_command(command)
