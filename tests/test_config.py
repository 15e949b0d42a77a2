from __future__ import annotations

import re
from pathlib import Path

import pytest

from builders import make_config, merged, write_config
from conftest import REPO
from publisher.config import SETTINGS, load_config, reference_markdown
from publisher.errors import ConfigError


def test_sample_config_loads():
    config = load_config(REPO)
    assert config.site.base_url == "https://blog.example.com/"
    assert config.site.timezone.key == "Asia/Seoul"
    assert config.newsletter.transport == "outbox"


def test_every_problem_reported_at_once_with_key_and_value():
    with pytest.raises(ConfigError) as info:
        make_config(smtp={"port": "25a", "security": "ssl"}, site={"language": "ko_KR", "bogus": 1})
    text = str(info.value)
    assert '[smtp].port: expected an integer 1-65535, got "25a"' in text
    assert '[smtp].security: expected one of "starttls", "tls", "none", got "ssl"' in text
    assert "[site].language: expected a BCP 47 language tag" in text
    assert "[site].bogus: unknown key" in text
    assert text.startswith("4 configuration problems:")


def test_unknown_section_is_an_error():
    raw = merged()
    raw["sitee"] = {}
    from publisher.config import config_from_mapping

    with pytest.raises(ConfigError, match=r"unknown section \[sitee\]"):
        config_from_mapping(raw)


def test_required_keys_are_named():
    from publisher.config import config_from_mapping

    with pytest.raises(ConfigError) as info:
        config_from_mapping({})
    text = str(info.value)
    for key in ("[site].title", "[site].base_url", "[site].author", "[newsletter].from_address"):
        assert f"{key}: required" in text


def test_base_url_gets_one_trailing_slash_and_must_be_absolute():
    assert (
        make_config(site={"base_url": "https://x.example/blog"}).site.base_url
        == "https://x.example/blog/"
    )
    with pytest.raises(ConfigError, match=r"absolute http"):
        make_config(site={"base_url": "/blog/"})


def test_bad_timezone_and_header_unsafe_strings():
    with pytest.raises(ConfigError, match=r"\[site\].timezone: expected an IANA time zone"):
        make_config(site={"timezone": "Seoul"})
    with pytest.raises(ConfigError, match="without CR, LF or NUL"):
        make_config(newsletter={"from_name": "a\r\nBcc: x@evil.test"})


def test_missing_and_invalid_toml_files_are_located(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"config\.toml: file not found"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_text("[site\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path)


def test_database_url_env_override_and_relative_sqlite(tmp_path: Path):
    write_config(tmp_path)
    config = load_config(tmp_path, env={})
    assert config.database_url == f"sqlite:///{tmp_path.resolve()}/publisher.db"
    env = {"PUBLISHER_DATABASE_URL": "postgresql://localhost/x"}
    assert load_config(tmp_path, env=env).database_url == "postgresql://localhost/x"


def test_readme_documents_every_setting_exactly():
    """Meta-test (as Datasette does): the README's table is the generated one."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert reference_markdown() in readme, (
        "run `publisher config --reference` and paste it into README.md"
    )
    for setting in SETTINGS:
        assert f"`{setting.name}`" in readme


def test_readme_documents_every_front_matter_field():
    from publisher.publish.content import KNOWN_FIELDS

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Writing a post", 1)[1].split("\n## ", 1)[0]
    for field in KNOWN_FIELDS:
        assert re.search(rf"`{field}`", section), field


def test_smtp_settings_that_the_outbox_ignores_are_named():
    """Issue 8, item 18: SMTP settings present but unused with transport = "outbox"."""
    from publisher.config import unused_smtp_settings

    assert unused_smtp_settings(make_config()) == []
    env = {"PUBLISHER_SMTP_URL": "smtp://mail.example.com:587", "PUBLISHER_SMTP_PASSWORD": "x"}
    config = make_config(env=env, smtp={"host": "mail.example.com", "port": 465})
    assert unused_smtp_settings(config) == [
        "$PUBLISHER_SMTP_URL",
        "[smtp].host",
        "[smtp].port",
        "$PUBLISHER_SMTP_PASSWORD",
    ]
    used = make_config(env=env, newsletter={"transport": "smtp"}, smtp={"host": "mail.example.com"})
    assert unused_smtp_settings(used) == []


def test_choices_are_enums_that_still_equal_their_strings():
    from publisher.config import Cadence, Content, InDoubtPolicy, Security, Transport

    config = make_config(
        newsletter={"cadence": "weekly", "content": "summary", "in_doubt_policy": "hold"},
        smtp={"security": "tls"},
    )
    n = config.newsletter
    assert n.cadence is Cadence.WEEKLY and n.cadence == "weekly"
    assert n.content is Content.SUMMARY
    assert n.transport is Transport.OUTBOX and n.transport == "outbox"
    assert n.in_doubt_policy is InDoubtPolicy.HOLD
    assert config.smtp.security is Security.TLS
    with pytest.raises(ConfigError, match='cadence: expected one of "per_post", "daily", "weekly"'):
        make_config(newsletter={"cadence": 7})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        ({"output_dir": "posts"}, "[build].output_dir is the same folder as [build].posts_dir"),
        ({"output_dir": "posts/site"}, "[build].output_dir is inside [build].posts_dir"),
        ({"posts_dir": "public/posts"}, "[build].output_dir contains [build].posts_dir"),
        ({"templates_dir": "public/t"}, "[build].output_dir contains [build].templates_dir"),
    ],
)
def test_output_folder_must_not_overlap_the_inputs(build: dict[str, str], message: str):
    with pytest.raises(ConfigError) as info:
        make_config(build=build)
    assert f"config.toml: {message}; a build replaces the whole output folder" in str(info.value)


def test_outbox_inside_the_output_folder_is_refused():
    with pytest.raises(ConfigError) as info:
        make_config(newsletter={"outbox_dir": "public/mail"})
    assert "[newsletter].outbox_dir is inside [build].output_dir" in str(info.value)
    make_config(newsletter={"outbox_dir": "mail"})  # beside it is fine


def test_lease_too_short_for_one_smtp_message_is_refused_not_clamped():
    # publisher.deliver.sender would otherwise raise its claim size of 0 to 1 silently.
    with pytest.raises(ConfigError) as info:
        make_config(schedule={"lease_seconds": 60}, smtp={"timeout_seconds": 30})
    assert str(info.value).count("problem") == 1
    assert "[schedule].lease_seconds (60) must be at least 3 x [smtp].timeout_seconds (30)" in str(
        info.value
    )
    assert make_config(schedule={"lease_seconds": 90}, smtp={"timeout_seconds": 30})
