"""MIME messages: headers (D1-D4, D8, L1-L3), bodies (D6, D7, D10) and DKIM (D9, R5)."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import subprocess
from datetime import datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import dkim
import dkim.crypto
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builders import SEOUL, make_config, make_post
from conftest import REPO
from publisher.config import Config
from publisher.deliver.message import (
    AddressError,
    DkimError,
    HeaderError,
    HeaderInjectionError,
    build_message,
    encode_subject,
    make_message_id,
)
from publisher.publish.newsletter import RenderedIssue, render_post_issue
from publisher.publish.site import build_site

NOW = datetime(2025, 7, 1, 9, 0, tzinfo=SEOUL)
TOKEN = "Qx3vB9kLm2NpR7sT1uVwXyZa4bCdEfGhIjKlMnOpQrS"  # 43 characters, as token_urlsafe(32)
UNSUBSCRIBE = f"https://blog.example.com/newsletter/unsubscribe/{TOKEN}"
PREFERENCES = f"https://blog.example.com/newsletter/preferences/{TOKEN}"
EXPECTED_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "MIME-Version",
    "Content-Type",
]


def rendered(tmp_path: Path, body_html: str = "<p>본문입니다.</p>", **config: Any) -> RenderedIssue:
    site = build_site(make_config(tmp_path, **config), [make_post(body_html=body_html)], NOW)
    return render_post_issue(site, site.posts[0])


@pytest.fixture
def issue(tmp_path: Path) -> RenderedIssue:
    return rendered(tmp_path)


def build(config: Config, issue: RenderedIssue, **overrides: Any) -> bytes:
    arguments: dict[str, Any] = {
        "to_address": "reader@example.org",
        "unsubscribe_url": UNSUBSCRIBE,
        "preferences_url": PREFERENCES,
        "message_id": make_message_id(42, 1337, config),
        "date": NOW,
    }
    arguments.update(overrides)
    return build_message(config, issue, **arguments)


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def raw_header(data: bytes, name: str) -> str:
    """The raw value of header ``name``, unfolded (RFC 5322 2.2.3)."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    return next(line for line in head.split("\r\n") if line.startswith(f"{name}: "))[
        len(name) + 2 :
    ]


def text_of(data: bytes) -> tuple[str, str]:
    """(text, html) of a built message, with LF line breaks."""
    parts = parse(data).iter_parts()
    return tuple(p.get_content().replace("\r\n", "\n") for p in parts)  # type: ignore[return-value]


def header_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def with_newsletter(config: Config, **changes: Any) -> Config:
    """``config`` with [newsletter] values the config validator would refuse."""
    return dataclasses.replace(config, newsletter=dataclasses.replace(config.newsletter, **changes))


# --- the header block -----------------------------------------------------------------


def test_headers_are_exactly_the_expected_set(tmp_path: Path, issue: RenderedIssue) -> None:
    message = parse(build(make_config(tmp_path), issue))
    assert list(message.keys()) == EXPECTED_HEADERS
    assert message["From"].addresses[0].display_name == "테스트 블로그"
    assert message["From"].addresses[0].addr_spec == "news@blog.example.com"
    assert message["To"] == "reader@example.org"
    assert message["Subject"] == "샘플 글"
    assert message["Date"] == "Tue, 01 Jul 2025 09:00:00 +0900"
    assert message["Message-ID"] == "<issue-42.1337@blog.example.com>"
    assert message["List-Id"] == "<newsletter.blog.example.com>"
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Auto-Response-Suppress"] == "OOF, AutoReply"
    assert message["MIME-Version"] == "1.0"


def test_reply_to_and_mailto_unsubscribe_when_configured_R3(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        newsletter={
            "reply_to": "editor@blog.example.com",
            "unsubscribe_mailto": "leave@blog.example.com",
        },
    )
    message = parse(build(config, rendered(tmp_path)))
    assert list(message.keys()) == [*EXPECTED_HEADERS[:2], "Reply-To", *EXPECTED_HEADERS[2:]]
    assert message["Reply-To"] == "editor@blog.example.com"
    assert message["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE}>, <mailto:leave@blog.example.com?subject=unsubscribe%20{TOKEN}>"
    )


def test_D2_list_unsubscribe_stays_plain_with_a_43_char_token(tmp_path: Path) -> None:
    config = make_config(tmp_path, newsletter={"unsubscribe_mailto": "leave@blog.example.com"})
    data = build(config, rendered(tmp_path))
    lines = [line for line in header_lines(data) if line.startswith(b"List-Unsubscribe:")]
    assert len(lines) == 1
    value = lines[0].removeprefix(b"List-Unsubscribe: ")
    assert value.startswith(b"<https://blog.example.com/newsletter/unsubscribe/")
    assert b"=?" not in value and len(lines[0]) <= 998
    following = header_lines(data)[header_lines(data).index(lines[0]) + 1]
    assert following.startswith(b"List-Unsubscribe-Post:")  # not folded onto a second line


def test_L1_stdlib_policy_smtp_still_encodes_a_long_list_unsubscribe() -> None:
    """Pins the trap the hand-written header block avoids; fails when Python fixes it."""
    message = EmailMessage(policy=policy.SMTP)
    message["List-Unsubscribe"] = f"<{UNSUBSCRIBE}>"
    assert bytes(message).startswith(b"List-Unsubscribe: =?utf-8?q?=3Chttps")


def test_list_unsubscribe_must_be_https_under_the_subscription_service_R4(
    tmp_path: Path, issue: RenderedIssue
) -> None:
    config = make_config(tmp_path)
    with pytest.raises(HeaderError, match=r"RFC 8058 section 3\.1 requires HTTPS") as caught:
        build(config, issue, unsubscribe_url="http://blog.example.com/newsletter/unsubscribe/x")
    assert caught.value.field == "List-Unsubscribe"
    with pytest.raises(HeaderError, match=r"is not under the subscription service"):
        build(config, issue, unsubscribe_url="https://evil.example/newsletter/unsubscribe/x")
    with pytest.raises(HeaderError, match="without <, >"):
        build(config, issue, unsubscribe_url="https://blog.example.com/newsletter/a>b")


def test_plain_http_unsubscribe_only_for_a_loopback_service(tmp_path: Path) -> None:
    """Preview and test servers on loopback may use http; any other host must be https."""
    local = make_config(tmp_path, web={"base_url": "http://127.0.0.1:8000/newsletter/"})
    data = build(
        local, rendered(tmp_path), unsubscribe_url="http://127.0.0.1:8000/newsletter/unsubscribe/t"
    )
    assert (
        raw_header(data, "List-Unsubscribe") == "<http://127.0.0.1:8000/newsletter/unsubscribe/t>"
    )
    remote = make_config(tmp_path, web={"base_url": "http://news.example.com/newsletter/"})
    with pytest.raises(HeaderError, match=r"requires HTTPS"):
        build(
            remote,
            rendered(tmp_path),
            unsubscribe_url="http://news.example.com/newsletter/unsubscribe/t",
        )


def test_header_lines_fit_78_columns_except_list_unsubscribe(tmp_path: Path) -> None:
    config = make_config(tmp_path, newsletter={"from_name": "아주 긴 이름의 뉴스레터 " * 4})
    issue = dataclasses.replace(rendered(tmp_path), subject="아주 긴 한국어 제목입니다 " * 8)
    data = build(config, issue)
    for line in header_lines(data):
        assert len(line) <= (998 if line.startswith(b"List-Unsubscribe:") else 78), line
    assert parse(data)["Subject"] == "아주 긴 한국어 제목입니다 " * 8
    phrase, address = raw_header(data, "From").rsplit(" ", 1)
    assert str(make_header(decode_header(phrase))) == "아주 긴 이름의 뉴스레터 " * 4
    assert address == "<news@blog.example.com>"


def test_python_address_parser_still_adds_spaces_between_encoded_words() -> None:
    """CPython's address parser puts a space between adjacent encoded-words of a display
    name (RFC 2047 6.2 says to drop it), even for names CPython folded itself: test long
    names with decode_header as above. Pinned so a fixed Python can simplify that test."""
    raw = b"From: =?UTF-8?B?7JWE7KO8?=\r\n =?UTF-8?B?6ri0?= <a@b.example>\r\n\r\n"
    assert parse(raw)["From"].addresses[0].display_name == "아주 긴"
    assert str(make_header(decode_header("=?UTF-8?B?7JWE7KO8?= =?UTF-8?B?6ri0?="))) == "아주긴"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Publisher News", "Publisher News"),
        ('Dr. "Kim" \\ Co', 'Dr. "Kim" \\ Co'),
        ("뉴스 <레터>, 주간", "뉴스 <레터>, 주간"),
    ],
)
def test_from_display_names_round_trip(tmp_path: Path, name: str, shown: str) -> None:
    config = make_config(tmp_path, newsletter={"from_name": name})
    address = parse(build(config, rendered(tmp_path)))["From"].addresses[0]
    assert (address.display_name, address.addr_spec) == (shown, "news@blog.example.com")


def test_D8_message_id_is_deterministic_per_row(tmp_path: Path, issue: RenderedIssue) -> None:
    config = make_config(tmp_path)
    assert make_message_id(42, 1337, config) == "<issue-42.1337@blog.example.com>"
    idn = make_config(tmp_path, site={"base_url": "https://블로그.example/"})
    assert make_message_id(1, 2, idn) == "<issue-1.2@xn--2i0b10rqve.example>"
    with pytest.raises(ValueError, match="issue_id must be a non-negative integer"):
        make_message_id(-1, 2, config)
    assert build(config, issue) == build(config, issue)


def test_date_must_be_timezone_aware_D8(tmp_path: Path, issue: RenderedIssue) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build(make_config(tmp_path), issue, date=datetime(2025, 7, 1, 9, 0))


@pytest.mark.parametrize("bad", ["<a b@c>", "no-brackets@x", "<@>", "<a@b><c@d>", "<a@b@c>"])
def test_message_id_must_be_well_formed(tmp_path: Path, issue: RenderedIssue, bad: str) -> None:
    with pytest.raises(HeaderError, match="Message-ID: expected <left@right>"):
        build(make_config(tmp_path), issue, message_id=bad)


def test_invalid_list_id_names_the_config_key(tmp_path: Path, issue: RenderedIssue) -> None:
    config = make_config(tmp_path, newsletter={"list_id": "my list"})
    with pytest.raises(HeaderError, match=r"List-Id: \[newsletter\].list_id: expected a dotted"):
        build(config, issue)


# --- header injection (D1, D1b, L2) ---------------------------------------------------------

BREAKS = ["\r\n", "\n", "\r", "\x00"]


@pytest.mark.parametrize("brk", BREAKS, ids=["crlf", "lf", "cr", "nul"])
def test_D1_line_breaks_in_the_subject_are_refused(
    tmp_path: Path, issue: RenderedIssue, brk: str
) -> None:
    hostile = dataclasses.replace(issue, subject=f"hello{brk}Bcc: evil@x.test")
    with pytest.raises(HeaderInjectionError, match=r"^Subject: contains CR, LF or NUL") as caught:
        build(make_config(tmp_path), hostile)
    assert caught.value.field == "Subject"


@pytest.mark.parametrize("brk", BREAKS, ids=["crlf", "lf", "cr", "nul"])
def test_D1_line_breaks_in_the_from_name_are_refused(
    tmp_path: Path, issue: RenderedIssue, brk: str
) -> None:
    config = with_newsletter(make_config(tmp_path), from_name=f"News{brk}Bcc: evil@x.test")
    with pytest.raises(HeaderInjectionError, match=r"^From: contains CR, LF or NUL") as caught:
        build(config, issue)
    assert caught.value.field == "From"


@pytest.mark.parametrize("brk", BREAKS, ids=["crlf", "lf", "cr", "nul"])
def test_D1_line_breaks_in_the_recipient_are_refused(
    tmp_path: Path, issue: RenderedIssue, brk: str
) -> None:
    with pytest.raises(HeaderInjectionError, match=r"^To: contains CR, LF or NUL"):
        build(make_config(tmp_path), issue, to_address=f"reader@example.org{brk}Bcc: evil@x.test")


SMUGGLED = "=?utf-8?q?hello=0D=0ABcc:_evil@x.test?="


def test_D1b_encoded_words_in_the_subject_are_refused(tmp_path: Path, issue: RenderedIssue) -> None:
    with pytest.raises(HeaderInjectionError, match=r"^Subject: contains '=\?'"):
        build(make_config(tmp_path), dataclasses.replace(issue, subject=SMUGGLED))
    with pytest.raises(HeaderInjectionError, match=r"^Subject: contains '=\?'"):
        encode_subject("제목 =?UTF-8?B?QmNjOiBldmls?=")


def test_D1b_encoded_words_in_the_from_name_are_refused(
    tmp_path: Path, issue: RenderedIssue
) -> None:
    config = with_newsletter(make_config(tmp_path), from_name=SMUGGLED)
    with pytest.raises(HeaderInjectionError, match=r"^From: contains '=\?'"):
        build(config, issue)


def test_L2_stdlib_still_turns_an_encoded_word_into_a_header() -> None:
    """Pins the trap the '=?' check closes; fails when Python fixes it."""
    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = SMUGGLED
    assert b"\r\nBcc: evil@x.test\r\n" in bytes(message)


@pytest.mark.parametrize(
    "subject",
    [
        "hello%0d%0aBcc: evil@x.test",
        "Bcc: evil@x.test",
        "?= ?Q? \u202eevil ?=",
        "제목 ?= 와 = 기호",
        "a\tb",
    ],
)
def test_D1b_odd_subjects_add_no_header(tmp_path: Path, issue: RenderedIssue, subject: str) -> None:
    message = parse(build(make_config(tmp_path), dataclasses.replace(issue, subject=subject)))
    assert list(message.keys()) == EXPECTED_HEADERS
    assert message["Subject"] == subject


@pytest.mark.parametrize("bad", ["\x1b[31m", "\x7f", "\u2028", "\x85"])
def test_control_characters_in_headers_are_refused(bad: str) -> None:
    with pytest.raises(HeaderInjectionError, match="control character or line separator"):
        encode_subject(f"제목{bad}")


# --- addresses (D4, D5) ------------------------------------------------------------------------


def test_D4_idn_domains_become_punycode(tmp_path: Path, issue: RenderedIssue) -> None:
    message = parse(build(make_config(tmp_path), issue, to_address="reader@bücher.example"))
    assert message["To"] == "reader@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("독자@example.org", "Internationalized characters before the @-sign"),
        ("alice@example.org)<bob@example.org>", "invalid characters"),
        ("Reader <reader@example.org>", "display name"),
        ("reader@localhost", "It should have a period"),
        ("reader..x@example.org", "two periods in a row"),
    ],
)
def test_D4_D5_invalid_recipients_are_refused(
    tmp_path: Path, issue: RenderedIssue, address: str, reason: str
) -> None:
    with pytest.raises(AddressError, match=reason) as caught:
        build(make_config(tmp_path), issue, to_address=address)
    assert caught.value.field == "To"


# --- subjects (D3, L3) ---------------------------------------------------------------------------

ENCODED_WORD = re.compile(r"=\?[^?]+\?[BbQq]\?[^?]*\?=")
SUBJECT_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("가나다라마바사아자차카타파하한국어제목뉴스레터"),
        st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3),
        st.characters(min_codepoint=0x20, max_codepoint=0x7E),
        st.sampled_from(" " * 6),
        st.sampled_from("😀🎉👍🏽👨‍👩‍👧✨"),
        st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")),
    ),
    min_size=1,
    max_size=300,
).filter(lambda s: "=?" not in s)


def check_subject_header(subject: str, value: str) -> None:
    unfolded = value.replace("\r\n", "")  # RFC 5322 2.2.3 unfolding comes before decoding
    assert str(make_header(decode_header(unfolded))) == subject
    assert all(len(word) <= 75 for word in ENCODED_WORD.findall(value))
    assert "?==?" not in value
    lines = ("Subject: " + value).split("\r\n")
    assert all(len(line) <= 78 for line in lines), lines
    assert all(line.startswith(" ") for line in lines[1:])


@settings(max_examples=300, deadline=None)
@given(SUBJECT_TEXT)
def test_D3_subjects_round_trip_exactly(subject: str) -> None:
    check_subject_header(subject, encode_subject(subject))


@settings(max_examples=60, deadline=None)
@given(SUBJECT_TEXT)
def test_D3_subjects_survive_the_whole_message(tmp_path_factory: Any, subject: str) -> None:
    root = tmp_path_factory.getbasetemp() / "d3"
    config = make_config(root)
    issue = RenderedIssue("post:x", subject, "", "<p>x</p>", "x\n", "0" * 64)
    assert parse(build(config, issue))["Subject"] == subject


@pytest.mark.parametrize(
    "subject",
    [
        "제목 " * 40,
        "한" * 300,
        "  spaces   everywhere  ",
        "A fairly long English subject line that needs folding at spaces to fit in 78 columns",
        "x" * 120,
        "👨‍👩‍👧" * 30,
    ],
)
def test_D3_known_hard_subjects(subject: str) -> None:
    check_subject_header(subject, encode_subject(subject))


def test_ascii_subjects_stay_readable() -> None:
    assert encode_subject("Hello, world") == "Hello, world"
    folded = encode_subject("word " * 20 + "end")
    assert "=?" not in folded and "\r\n " in folded


def test_L3_stdlib_policy_smtp_still_loses_korean_spaces() -> None:
    """Pins the trap ``encode_subject`` avoids (cpython #92081); fails when Python fixes it."""
    message = EmailMessage(policy=policy.SMTP)
    message["Subject"] = "제목 " * 40
    raw = bytes(message)
    assert parse(raw)["Subject"] != "제목 " * 40
    assert max(len(w) for w in ENCODED_WORD.findall(raw.decode())) == 76


# --- bodies (D6, D7, D10, R7) ----------------------------------------------------------------------


def test_multipart_alternative_text_first_both_with_unsubscribe_D10(
    tmp_path: Path, issue: RenderedIssue
) -> None:
    data = build(make_config(tmp_path), issue)
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    text, html = text_of(data)
    assert f"구독 해지 ({UNSUBSCRIBE})" in text
    assert f'href="{UNSUBSCRIBE}"' in html
    assert f'href="{PREFERENCES}"' in html


def test_D7_no_line_exceeds_998_bytes_with_a_5000_char_line(tmp_path: Path) -> None:
    long_ascii, long_korean = "x" * 5000, "가" * 5000
    issue = rendered(tmp_path, body_html=f"<p>{long_ascii}</p><p>{long_korean}</p>")
    data = build(make_config(tmp_path), issue)
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    body_lines = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76  # RFC 2045 6.7, 6.8
    text, html = text_of(data)
    assert long_ascii in html and long_korean in html
    assert long_ascii in text and long_korean in text


def test_D6_a_lone_dot_line_cannot_end_the_message(tmp_path: Path) -> None:
    issue = rendered(tmp_path, body_html="<p>첫 줄<br>.<br>셋째 줄</p><pre>.</pre>")
    assert "\n.\n" in issue.text
    data = build(make_config(tmp_path), issue)
    assert b"\r\n.\r\n" not in data
    text, html = text_of(data)
    assert "첫 줄\n.\n셋째 줄" in text
    assert "<br>.<br>" in html


def test_D6_bare_cr_and_nul_never_reach_the_wire(tmp_path: Path, issue: RenderedIssue) -> None:
    hostile = dataclasses.replace(issue, text="a\rb\x00c\r\nd\x07e\n", html="<p>x\x00y\ry</p>\n")
    data = build(make_config(tmp_path), hostile)
    assert b"\x00" not in data
    assert re.search(rb"\r(?!\n)|(?<!\r)\n", data) is None  # every line ends with CRLF
    text, html = text_of(data)
    assert text == "a\nbc\nde\n"
    assert html == "<p>xy\ny</p>\n"


def test_body_parts_choose_the_shorter_encoding(tmp_path: Path, issue: RenderedIssue) -> None:
    korean = dataclasses.replace(
        issue, text="한국어 문장입니다. " * 50, html="<p>" + "a" * 500 + "</p>"
    )
    text, html = parse(build(make_config(tmp_path), korean)).iter_parts()
    assert text["Content-Transfer-Encoding"] == "base64"
    assert html["Content-Transfer-Encoding"] == "quoted-printable"


# --- DKIM (D9, R5) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: Any) -> tuple[bytes, bytes]:
    """A throwaway 2048-bit key: (PEM private key, DNS TXT record), made with openssl."""
    openssl = shutil.which("openssl")
    assert openssl, "the DKIM tests need the openssl command (Debian: apt-get install openssl)"
    folder = tmp_path_factory.mktemp("dkim")
    key = folder / "private.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dkim_config(tmp_path: Path, pem: bytes | None = None, **dkim_settings: Any) -> Config:
    values = {"enabled": True, "domain": "blog.example.com", "selector": "news2025"}
    values.update(dkim_settings)
    env = {"PUBLISHER_DKIM_PRIVATE_KEY": pem.decode()} if pem else {}
    return make_config(tmp_path, env=env, dkim=values)


def dns_stub(record: bytes) -> Any:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"news2025._domainkey.blog.example.com." else None

    return lookup


def test_D9_dkim_signature_verifies_and_covers_both_list_headers(
    tmp_path: Path, issue: RenderedIssue, rsa_key: tuple[bytes, bytes]
) -> None:
    pem, record = rsa_key
    data = build(dkim_config(tmp_path, pem), issue)
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dns_stub(record))
    signature = parse(data)["DKIM-Signature"]
    signed = [h.strip() for h in re.search(r"h=([^;]+)", signature)[1].split(":")]  # type: ignore[index]
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "mime-version"):
        assert name in signed
    assert signed.count("list-unsubscribe") == 2  # signed and over-signed (RFC 6376 8.15)
    assert signed.count("list-unsubscribe-post") == 2
    assert "d=blog.example.com" in signature and "s=news2025" in signature


def test_D9_dkim_fails_when_a_list_header_is_changed_or_added(
    tmp_path: Path, issue: RenderedIssue, rsa_key: tuple[bytes, bytes]
) -> None:
    pem, record = rsa_key
    data = build(dkim_config(tmp_path, pem), issue)
    changed = data.replace(TOKEN.encode(), b"A" * len(TOKEN), 1)
    assert not dkim.verify(changed, dnsfunc=dns_stub(record))
    added = data.replace(b"\r\n\r\n", b"\r\nList-Unsubscribe: <https://evil.example/>\r\n\r\n", 1)
    assert not dkim.verify(added, dnsfunc=dns_stub(record))


def test_dkim_key_from_a_file_relative_to_the_site(
    tmp_path: Path, issue: RenderedIssue, rsa_key: tuple[bytes, bytes]
) -> None:
    pem, record = rsa_key
    (tmp_path / "dkim.pem").write_bytes(pem)
    data = build(dkim_config(tmp_path, key_file="dkim.pem"), issue)
    assert dkim.verify(data, dnsfunc=dns_stub(record))


def test_dkim_key_from_one_line_env_value(
    tmp_path: Path, issue: RenderedIssue, rsa_key: tuple[bytes, bytes]
) -> None:
    pem, record = rsa_key
    one_line = pem.decode().strip().replace("\n", "\\n").encode()
    assert dkim.verify(build(dkim_config(tmp_path, one_line), issue), dnsfunc=dns_stub(record))


def test_dkim_without_a_key_says_where_to_put_it(tmp_path: Path, issue: RenderedIssue) -> None:
    with pytest.raises(DkimError, match="set the environment variable PUBLISHER_DKIM_PRIVATE_KEY"):
        build(dkim_config(tmp_path), issue)
    with pytest.raises(DkimError, match=r"\[dkim\].key_file: cannot read .*missing.pem"):
        build(dkim_config(tmp_path, key_file="missing.pem"), issue)


def test_dkim_domain_must_align_with_from_R5(
    tmp_path: Path, issue: RenderedIssue, rsa_key: tuple[bytes, bytes]
) -> None:
    with pytest.raises(DkimError, match=r"not aligned with the From domain 'blog\.example\.com'"):
        build(dkim_config(tmp_path, rsa_key[0], domain="other.example"), issue)
    with pytest.raises(DkimError, match=r"\[dkim\].domain and \[dkim\].selector are required"):
        build(dkim_config(tmp_path, rsa_key[0], selector=""), issue)


# --- the README's DKIM set-up and header claims (issue 8, item 24) -----------------------------


def _readme_section(title: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n### {title}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_readme_dkim_commands_make_a_key_and_record_that_verify(
    tmp_path: Path, issue: RenderedIssue
) -> None:
    """Run the README's shell block as written; sign with the key it made (as key_file, the
    [dkim] example's way) and verify against the record it printed."""
    section = _readme_section("DKIM")
    commands = section.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "openssl genpkey" in commands
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    )
    record = done.stdout.strip().splitlines()[-1].encode()
    assert record.startswith(b"v=DKIM1; k=rsa; p=MIIBIjAN")
    pem = (tmp_path / "dkim-private.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, as the README says
    data = build(dkim_config(tmp_path, key_file="dkim-private.pem"), issue)
    assert dkim.verify(data, dnsfunc=dns_stub(record))
    # The zone-file example is a real record: its strings join to a key dkimpy accepts.
    zone = section.split("IN TXT (", 1)[1].split(")", 1)[0]
    example = "".join(re.findall(r'"([^"]*)"', zone)).encode()
    assert example.startswith(b"v=DKIM1; k=rsa; p=")
    assert dkim.crypto.parse_public_key(base64.b64decode(example.split(b"p=", 1)[1]))
    for name in ("[dkim]", "enabled = true", "selector", "domain", "key_file", "DKIM_PRIVATE_KEY"):
        assert name in section, name


def test_readme_says_reply_to_only_when_configured(tmp_path: Path, issue: RenderedIssue) -> None:
    """A message without [newsletter].reply_to has no Reply-To, and the README says so."""
    assert "Reply-To" not in parse(build(make_config(tmp_path), issue))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    claims = [line for line in readme.splitlines() if "Reply-To" in line and "|" not in line]
    assert claims and all("only when" in line for line in claims), claims
