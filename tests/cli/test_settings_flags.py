"""The settings flags come from `Settings`: every setting but the secrets is a flag, with the old names and types."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest
from pydantic import SecretStr

from flora_mcp.cli.flags import flag_fields, flag_name
from flora_mcp.cli.main import build_parser, settings_from_args
from flora_mcp.config import Settings

SECRETS = {"api_key", "mcp_tokens", "state_keys", "oauth_client_secret", "webhook_secret", "database_url"}
VERBS = [[], ["serve"], ["export-tools"], ["techniques"], ["describe", "x"], ["run", "x"]]


@pytest.fixture(autouse=True)
def no_flora_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("FLORA_")]:
        monkeypatch.delenv(name)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def settings(*argv: str) -> Settings:
    return settings_from_args(parse(*argv))


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_every_setting_but_the_secrets_is_a_flag() -> None:
    assert set(flag_fields()) == set(Settings.model_fields) - SECRETS
    flags = option_strings(build_parser())
    for field in flag_fields():
        assert flag_name(field) in flags


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "no verb")
@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_a_secret_is_never_a_flag(secret: str, verb: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A key on a command line is visible to every user of the machine (`ps`)."""
    with pytest.raises(SystemExit) as exited:
        parse(*verb, f"{flag_name(secret)}=sk_live_on0the0command0line")
    assert exited.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_a_secret_without_the_mark_is_refused() -> None:
    class Leaky(Settings):
        signing_secret: SecretStr | None = None

    with pytest.raises(TypeError, match="signing_secret"):
        flag_fields(Leaky)


OLD_FLAGS = [
    pytest.param("--base-url", "http://127.0.0.1:9/api/v1/", "base_url", "http://127.0.0.1:9/api/v1", id="base-url"),
    pytest.param("--workspace-id", "ws_1", "workspace_id", "ws_1", id="workspace-id"),
    pytest.param("--poll-interval", "0.5", "poll_interval", 0.5, id="poll-interval"),
    pytest.param("--max-wait", "5", "max_wait", 5.0, id="max-wait"),
    pytest.param("--run-timeout", "60", "run_timeout", 60.0, id="run-timeout"),
    pytest.param("--log-level", "debug", "log_level", "DEBUG", id="log-level"),
    pytest.param("--journal", ":memory:", "journal", ":memory:", id="journal"),
    pytest.param("--techniques", "cctv-*,!*-beta", "techniques", "cctv-*,!*-beta", id="techniques"),
    pytest.param("--query", "portrait", "query", "portrait", id="query"),
    pytest.param("--tools-mode", "compact", "tools_mode", "compact", id="tools-mode"),
    pytest.param("--max-cost-per-call", "0.25", "max_cost_per_call", 0.25, id="max-cost-per-call"),
    pytest.param("--session-budget", "2", "session_budget", 2.0, id="session-budget"),
]


@pytest.mark.parametrize(("flag", "value", "field", "expected"), OLD_FLAGS)
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: " ".join(v) or "no verb")
def test_the_old_flags_keep_their_names_and_types(flag: str, value: str, field: str, expected: Any,
                                                  verb: list[str]) -> None:
    assert getattr(settings(*verb, flag, value), field) == expected


@pytest.mark.parametrize("verb", VERBS[1:], ids=lambda v: " ".join(v))
def test_a_flag_before_the_verb_is_not_lost(verb: list[str]) -> None:
    args = parse("--sandbox", "--max-wait", "5", *verb)
    assert args.sandbox is True and settings_from_args(args).max_wait == 5.0


def test_a_serving_flag_before_serve_is_not_lost() -> None:
    args = parse("--transport", "http", "--port", "9", "serve", "--stateless")
    assert (args.transport, args.port, args.stateless, args.host) == ("http", 9, True, "127.0.0.1")


def test_a_flag_wins_over_its_variable_and_an_absent_flag_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLORA_MAX_WAIT", "9")
    monkeypatch.setenv("FLORA_RUN_TIMEOUT", "99")
    given = settings("--max-wait", "5")
    assert (given.max_wait, given.run_timeout) == (5.0, 99.0)


def test_new_settings_are_flags_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLORA_PREVIEW", "on")
    given = settings("--request-timeout", "7", "--max-retries", "0", "--catalog-ttl", "0", "--no-preview",
                     "--confirm-above", "0.5", "--catalog-cache", "off")
    assert (given.request_timeout, given.max_retries, given.catalog_ttl, given.preview, given.confirm_above,
            given.catalog_cache) == (7.0, 0, 0.0, False, 0.5, "off")
    assert settings("--preview").preview is True and settings().preview is True


@pytest.mark.parametrize("argv", [
    pytest.param(["--tools-mode", "everything"], id="literal is a choice"),
    pytest.param(["--max-wait", "soon"], id="float"),
    pytest.param(["--max-cost-per-call", "free"], id="optional float"),
    pytest.param(["--max-retries", "2.5"], id="int"),
    pytest.param(["--preview", "yes"], id="bool takes no value"),
])
def test_a_bad_flag_value_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2 and argv[0] in capsys.readouterr().err


def test_the_help_is_the_fields_description_variable_and_default() -> None:
    helps = {action.dest: action.help or "" for action in build_parser()._actions}
    for field, info in Settings.model_fields.items():
        assert info.description, f"Settings.{field} has no description"
        if field in SECRETS:
            continue
        assert info.description in helps[field] and f"FLORA_{field.upper()}" in helps[field]
    assert "default: 50)" in helps["max_wait"] and "default: auto)" in helps["tools_mode"]
    assert "default: on)" in helps["preview"] and "default: unset)" in helps["session_budget"]
    build_parser().format_help()  # a `%` in a description would break argparse's formatting here
