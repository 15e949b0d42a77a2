"""Signed link tokens (RELIABILITY S1-S5, S10, E9, D2)."""

from __future__ import annotations

import base64
import hmac
from datetime import timedelta
from pathlib import Path

import pytest

from builders import make_config
from publisher.deliver.tokens import (
    SETTING_KEY,
    InvalidToken,
    Purpose,
    TokenSigner,
    confirm_url,
    load_keys,
    make_signer,
    preferences_url,
    unsubscribe_url,
)
from publisher.errors import PublisherError
from sending import FakeClock, open_store

KEY = b"k" * 32
DAY = timedelta(days=1)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def signer(clock: FakeClock) -> TokenSigner:
    return TokenSigner([KEY], clock)


def test_round_trip_and_short_url_safe(signer: TokenSigner, clock: FakeClock):
    token = signer.sign(Purpose.UNSUBSCRIBE, 123_456_789, 42)
    assert len(token) <= 40  # List-Unsubscribe stays on one line (L1, D2)
    assert token.replace("-", "").replace("_", "").isalnum()
    assert signer.verify(token, Purpose.UNSUBSCRIBE, None) == (123_456_789, 42, clock.now)


def test_tampered_tokens_are_rejected_e9(signer: TokenSigner):
    token = signer.sign(Purpose.UNSUBSCRIBE, 7, 1)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        altered = bytearray(raw)
        altered[i] ^= 0x01
        bad = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(InvalidToken):
            signer.verify(bad, Purpose.UNSUBSCRIBE, None)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated
        lambda t: t[:20],
        lambda t: t + "A",
        lambda t: t.upper(),
        lambda t: t.replace("-", "%2D") + "%3D",  # double-encoded
        lambda t: "",
        lambda t: "x" * 300,
        lambda t: t[:-2] + "가나",
    ],
)
def test_malformed_tokens_raise_one_generic_error(signer: TokenSigner, mangle):
    token = signer.sign(Purpose.CONFIRM, 7, 1)
    with pytest.raises(InvalidToken) as info:
        signer.verify(mangle(token), Purpose.CONFIRM, DAY)
    assert str(info.value) == "invalid or expired link"


def test_each_token_is_rejected_for_every_other_purpose_s4(signer: TokenSigner):
    for purpose in Purpose:
        token = signer.sign(purpose, 7, 1)
        for other in Purpose:
            if other is not purpose:
                with pytest.raises(InvalidToken):
                    signer.verify(token, other, None)


def test_confirm_tokens_expire(signer: TokenSigner, clock: FakeClock):
    token = signer.sign(Purpose.CONFIRM, 7, 1)
    clock.advance(hours=71)
    assert signer.verify(token, Purpose.CONFIRM, timedelta(hours=72))[0] == 7
    clock.advance(hours=2)
    with pytest.raises(InvalidToken):
        signer.verify(token, Purpose.CONFIRM, timedelta(hours=72))


def test_sixty_day_old_unsubscribe_token_works_s10(signer: TokenSigner, clock: FakeClock):
    token = signer.sign(Purpose.UNSUBSCRIBE, 7, 3)
    clock.advance(days=60)
    assert signer.verify(token, Purpose.UNSUBSCRIBE, None)[:2] == (7, 3)


def test_another_key_or_a_bare_id_is_rejected_s5(signer: TokenSigner, clock: FakeClock):
    forged = TokenSigner([b"x" * 32], clock).sign(Purpose.UNSUBSCRIBE, 7, 1)
    with pytest.raises(InvalidToken):
        signer.verify(forged, Purpose.UNSUBSCRIBE, None)
    with pytest.raises(InvalidToken):
        signer.verify("7", Purpose.UNSUBSCRIBE, None)


def test_key_rotation_newest_first(clock: FakeClock):
    old = TokenSigner([b"o" * 32], clock).sign(Purpose.UNSUBSCRIBE, 7, 1)
    rotated = TokenSigner([b"n" * 32, b"o" * 32], clock)
    assert rotated.verify(old, Purpose.UNSUBSCRIBE, None)[0] == 7
    new = rotated.sign(Purpose.UNSUBSCRIBE, 7, 1)
    with pytest.raises(InvalidToken):  # a rotated-out key no longer verifies new tokens
        TokenSigner([b"o" * 32], clock).verify(new, Purpose.UNSUBSCRIBE, None)


def test_macs_are_compared_with_compare_digest_s3(signer: TokenSigner, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("publisher.deliver.tokens.hmac.compare_digest", spy)
    signer.verify(signer.sign(Purpose.CONFIRM, 1, 1), Purpose.CONFIRM, DAY)
    assert len(calls) == 1


def test_no_collisions_in_many_tokens_s1(signer: TokenSigner):
    tokens = {signer.sign(Purpose.UNSUBSCRIBE, i, 1) for i in range(20_000)}
    assert len(tokens) == 20_000


def test_keys_from_environment(tmp_path: Path):
    env = {"PUBLISHER_SECRET_KEY": "new-key-0123456789abcdef, old-key-0123456789abcdef"}
    keys = load_keys(make_config(tmp_path, env=env), store=None)  # type: ignore[arg-type]
    assert keys == [b"new-key-0123456789abcdef", b"old-key-0123456789abcdef"]


def test_short_environment_key_is_an_error(tmp_path: Path):
    config = make_config(tmp_path, env={"PUBLISHER_SECRET_KEY": "short"})
    with pytest.raises(PublisherError, match="key 1 is shorter than 16 characters"):
        load_keys(config, store=None)  # type: ignore[arg-type]


def test_generated_key_is_stored_once_and_smtp_warns(tmp_path: Path, clock: FakeClock):
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    warnings: list[str] = []
    config = make_config(tmp_path, newsletter={"transport": "smtp"})
    first = make_signer(config, store, clock, warn=warnings.append)
    second = make_signer(config, store, clock)
    token = first.sign(Purpose.UNSUBSCRIBE, 1, 1)
    assert second.verify(token, Purpose.UNSUBSCRIBE, None)[0] == 1
    assert len(bytes.fromhex(store.get_setting(SETTING_KEY) or "")) == 32
    assert warnings and "PUBLISHER_SECRET_KEY is not set" in warnings[0]


def test_urls_live_under_the_web_base_url(tmp_path: Path):
    config = make_config(tmp_path)
    assert unsubscribe_url(config, "T") == "https://blog.example.com/newsletter/unsubscribe/T"
    assert preferences_url(config, "T") == "https://blog.example.com/newsletter/preferences/T"
    assert confirm_url(config, "T") == "https://blog.example.com/newsletter/confirm/T"
