"""publisher subscribers import --from substack|ghost|buttondown|mailchimp|listmonk (issue 11).

Real SQLite and PostgreSQL; exports shaped like each tool's CSV files.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.store import ConsentMethod, SubscriberStatus
from sending import open_store
from test_cli_newsletter import cli, make_site  # noqa: F401 - the fixture

ACTIVE, PENDING = SubscriberStatus.ACTIVE, SubscriberStatus.PENDING
UNSUB, BOUNCED = SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED

EXPORTS = {
    "substack": (
        "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at\n"
        "reader@example.com,false,,,false,2023-04-01T09:00:00.000Z,\n"
        "paid@example.com,true,2026-01-01T00:00:00.000Z,yearly,false,2023-05-02T10:00:00.000Z,2023-05-02T10:00:00.000Z\n"
        "left@example.com,false,,,true,2022-01-01T00:00:00.000Z,\n",
        {"reader@example.com": ACTIVE, "paid@example.com": ACTIVE, "left@example.com": UNSUB},
    ),
    "ghost": (
        "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,deleted_at,labels,tiers\n"
        '6543a1,reader@example.com,김독자,,true,false,,2024-02-01T01:02:03.000Z,,"경제, 세계",\n'
        "6543a2,quiet@example.com,,,false,false,,2024-02-02T00:00:00.000Z,,,\n"
        "6543a3,gone@example.com,,,true,false,,2024-02-03T00:00:00.000Z,2024-06-01T00:00:00.000Z,,\n",
        {"reader@example.com": ACTIVE, "quiet@example.com": UNSUB, "gone@example.com": UNSUB},
    ),
    "buttondown": (
        "id,email,creation_date,notes,metadata,tags,referrer_url,secondary_id,subscriber_type,unsubscription_date\n"
        "b1,reader@example.com,2024-03-01T12:00:00Z,,{},\"['경제']\",,1,regular,\n"
        "b2,new@example.com,2024-03-02T12:00:00Z,,{},[],,2,unactivated,\n"
        "b3,left@example.com,2024-03-03T12:00:00Z,,{},[],,3,regular,2024-05-01T00:00:00Z\n"
        "b4,dead@example.com,2024-03-04T12:00:00Z,,{},[],,4,undeliverable,\n",
        {
            "reader@example.com": ACTIVE,
            "new@example.com": PENDING,
            "left@example.com": UNSUB,
            "dead@example.com": BOUNCED,
        },
    ),
    "listmonk": (
        "uuid,email,name,attributes,status,created_at,updated_at\n"
        'u1,reader@example.com,Reader,"{""city"": ""서울""}",enabled,2024-01-05 10:00:00+09:00,2024-01-05 10:00:00+09:00\n'
        "u2,blocked@example.com,B,{},blocklisted,2024-01-06 10:00:00+09:00,2024-01-06 10:00:00+09:00\n"
        "u3,off@example.com,C,{},disabled,2024-01-07 10:00:00+09:00,2024-01-07 10:00:00+09:00\n",
        {"reader@example.com": ACTIVE, "blocked@example.com": UNSUB, "off@example.com": UNSUB},
    ),
}

MAILCHIMP_HEAD = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,'
    "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)
MAILCHIMP = {
    "subscribed_members_export_1.csv": MAILCHIMP_HEAD
    + "\n"
    + 'reader@example.com,독자,김,2,"2021-03-01 10:00:00",,"2021-03-01 10:05:00",,,,,,,,,'
    + '"2021-03-01 10:05:00",1,a,,"""경제"",""세계"""\n'
    + 'single@example.com,,,2,"2021-04-01 10:00:00",,,,,,,,,,,"2021-04-01 10:00:00",2,b,,\n',
    "unsubscribed_members_export_1.csv": MAILCHIMP_HEAD
    + ",UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER\n"
    + 'left@example.com,,,1,"2020-01-01 00:00:00",,"2020-01-01 00:00:00",,,,,,,,,'
    + '"2022-01-01 00:00:00",3,c,,,"2022-01-01 00:00:00",뉴스,x,"NORMAL",\n'
    + 'reader@example.com,,,1,"2020-01-01 00:00:00",,"2020-01-01 00:00:00",,,,,,,,,'
    + '"2022-01-01 00:00:00",4,d,,,"2022-01-01 00:00:00",뉴스,x,"NORMAL",\n',
    "cleaned_members_export_1.csv": MAILCHIMP_HEAD
    + ",CLEAN_TIME,CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID\n"
    + 'bounced@example.com,,,1,"2020-01-01 00:00:00",,"2020-01-01 00:00:00",,,,,,,,,'
    + '"2022-01-01 00:00:00",5,e,,,"2022-02-01 00:00:00",뉴스,y\n',
}


@pytest.mark.parametrize("tool", sorted(EXPORTS))
def test_each_tool_keeps_consent_and_suppression(tmp_path: Path, db_url: str, cli, tool: str):  # noqa: F811
    make_site(tmp_path)
    text, expected = EXPORTS[tool]
    export = tmp_path / f"{tool}.csv"
    export.write_text(text, encoding="utf-8")
    code, out, err = cli("subscribers", "import", str(export), "--from", tool)
    assert code == 0, err
    store = open_store(db_url)
    for address, status in expected.items():
        found = store.find_subscriber(address)
        assert found is not None, address
        assert found.status == status, address
        assert found.consent is not None
        assert found.consent.method == ConsentMethod.IMPORT
        assert found.consent.source == f"imported from {tool} ({export.name})"
        if status in (UNSUB, BOUNCED):
            assert found.unsubscribed_at is not None
    reader = store.find_subscriber("reader@example.com")
    assert reader is not None and reader.consent is not None
    assert reader.consent.at is not None and reader.consent.at.year in (2023, 2024)
    active = [s.email for s in store.iter_subscribers(ACTIVE)]
    assert sorted(active) == sorted(a for a, s in expected.items() if s == ACTIVE)
    code, out, _ = cli("subscribers", "import", str(export), "--from", tool)
    assert code == 0
    assert f"imported 0 subscribers from {export.name}; {len(expected)} already present" in out


def test_ghost_labels_become_categories(tmp_path: Path, db_url: str, cli):  # noqa: F811
    make_site(tmp_path)
    export = tmp_path / "members.csv"
    export.write_text(EXPORTS["ghost"][0], encoding="utf-8")
    assert cli("subscribers", "import", str(export), "--from", "ghost")[0] == 0
    reader = open_store(db_url).find_subscriber("reader@example.com")
    assert reader is not None and reader.categories == ("경제", "세계")
    assert reader.consent is not None
    assert reader.consent.at == datetime(2024, 2, 1, 1, 2, 3, tzinfo=UTC)


def test_mailchimp_files_confirmation_tags_and_suppression_wins(
    tmp_path: Path,
    db_url: str,
    cli,  # noqa: F811
):
    make_site(tmp_path)
    paths = {}
    for name, text in MAILCHIMP.items():
        paths[name] = tmp_path / name
        paths[name].write_text(text, encoding="utf-8")
    code, out, err = cli(
        "subscribers",
        "import",
        str(paths["subscribed_members_export_1.csv"]),
        "--from",
        "mailchimp",
    )
    assert code == 0, err
    assert "states in the export: 1 active, 1 pending" in out
    # the site has posts in 세계 only: 경제 is flagged, 세계 is not
    assert "warning: categories this site has no posts in: 경제; readers with only" in err
    store = open_store(db_url)
    reader = store.find_subscriber("reader@example.com")
    assert reader is not None and reader.status == ACTIVE
    assert reader.categories == ("경제", "세계")
    single = store.find_subscriber("single@example.com")
    assert single is not None and single.status == PENDING  # no CONFIRM_TIME: not mailed
    for name in ("unsubscribed_members_export_1.csv", "cleaned_members_export_1.csv"):
        code, out, err = cli("subscribers", "import", str(paths[name]), "--from", "mailchimp")
        assert code == 0, err
    reader = store.find_subscriber("reader@example.com")
    assert reader is not None and reader.status == UNSUB  # left later: suppression wins
    bounced = store.find_subscriber("bounced@example.com")
    assert bounced is not None and bounced.status == BOUNCED
    assert store.count_recipients([]) == 0
    # importing the subscribed file again does not resubscribe anybody
    cli(
        "subscribers",
        "import",
        str(paths["subscribed_members_export_1.csv"]),
        "--from",
        "mailchimp",
    )
    reader = store.find_subscriber("reader@example.com")
    assert reader is not None and reader.status == UNSUB


def test_a_bad_row_imports_nothing_and_names_its_line(tmp_path: Path, db_url: str, cli):  # noqa: F811
    make_site(tmp_path)
    export = tmp_path / "bd.csv"
    text = EXPORTS["buttondown"][0].replace("b2,new@example.com", "b2,not-an-address")
    export.write_text(text.replace(",regular,\n", ",mystery,\n", 1), encoding="utf-8")
    code, _, err = cli("subscribers", "import", str(export), "--from", "buttondown")
    assert code == 1
    assert f"{export}:2: unknown Buttondown subscriber_type 'mystery'" in err
    assert f"{export}:3: invalid email address 'not-an-address'" in err
    assert open_store(db_url).count_subscribers() == 0


def test_an_export_without_an_email_column_is_refused(tmp_path: Path, db_url: str, cli):  # noqa: F811
    make_site(tmp_path)
    export = tmp_path / "x.csv"
    export.write_text("name,status\nA,enabled\n", encoding="utf-8")
    code, _, err = cli("subscribers", "import", str(export), "--from", "listmonk")
    assert code == 1
    assert "no email column for a listmonk export (found: name, status)" in err
