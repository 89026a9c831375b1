"""${VAR} resolution, .env files, secret fields and masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.botfile.check import check_document, check_file
from runner.cli import main
from runner.botfile.env import MASK, EnvResolver, is_secret_path, mask, read_dotenv
from runner.botfile.errors import ConfigError
from runner.botfile.yamlsafe import load_text

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "fixtures" / "valid"
SECRET = "s3cr3t-value-that-must-never-print"


def resolve(text: str, environ=None, dotenv=None, allow_missing=False):
    doc = load_text(text, "bot.yaml")
    resolver = EnvResolver(doc, environ or {}, dotenv or {}, allow_missing)
    return resolver.resolve(doc.data), resolver


def bot(livekit: str = "{room: lobby}", rest: str = "") -> str:
    return f"version: 1\nlivekit: {livekit}\n{rest}"


def check(text: str, environ=None, dotenv=None, **kw):
    return check_document(load_text(text, "bot.yaml"), environ=environ or {}, dotenv=dotenv or {}, **kw)


def errors(text: str, environ=None, dotenv=None, **kw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(text, environ, dotenv, **kw)
    return [p.render().splitlines()[0] for p in info.value.errors]


# ---- substitution ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, environ, expected", [
    ("${A}", {"A": "x"}, "x"),
    ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
    ("${A}${B}", {"A": "1", "B": "2"}, "12"),
    ("${A:-fallback}", {}, "fallback"),
    ("${A:-}", {}, ""),
    ("${A:-with spaces and : colons}", {}, "with spaces and : colons"),
    ("${A:-default}", {"A": "set"}, "set"),
    ("${A:-default}", {"A": ""}, ""),  # set but empty is still set
    ("$${A}", {"A": "x"}, "${A}"),
    ("cost $${A} and ${A}", {"A": "x"}, "cost ${A} and x"),
    ("$5 and $HOME", {}, "$5 and $HOME"),
    ("${ A }", {"A": "x"}, "x"),
])
def test_substitution(value, environ, expected):
    data, resolver = resolve(f"v: '{value}'\n", environ)
    assert data == {"v": expected}
    assert not resolver.problems


@pytest.mark.parametrize("value, expected", [
    ("${N:-24000}", 24000), ("${N:--3}", -3), ("${N:-0.5}", 0.5), ("${N:-true}", True), ("${N:-false}", False),
    ("${N:-null}", None), ("${N:-yes}", "yes"), ("${N:-0755}", "0755"), ("${N:-text}", "text"),
    ("x${N:-1}", "x1"), ("${N:-1} ", "1 "),
])
def test_a_whole_value_reference_is_typed(value, expected):
    data, _ = resolve(f"v: '{value}'\n")
    assert data == {"v": expected}
    assert type(data["v"]) is type(expected)


def test_typed_values_reach_the_spec():
    spec = check(bot(rest="params:\n  audio_out_sample_rate: ${RATE:-24000}\n"
                          "session:\n  interruptions: ${INTERRUPT:-false}\n  max_duration: ${MAX}\n"),
                 environ={"MAX": "90.5"})
    assert spec.params["audio_out_sample_rate"] == 24000
    assert spec.session["interruptions"] is False
    assert spec.session["max_duration"] == 90.5


def test_a_reference_typed_wrong_is_an_error_at_its_line():
    assert errors(bot(rest="params:\n  audio_out_sample_rate: ${RATE}\n"), {"RATE": "fast"}) == [
        "bot.yaml:4:26: error: params.audio_out_sample_rate: expected a whole number or empty, got 'fast'"]


@pytest.mark.parametrize("value, fragment", [
    ("${1BAD}", "not a valid variable reference"),
    ("${A-B}", "not a valid variable reference"),
    ("${}", "not a valid variable reference"),
    ("${OPEN", "not closed"),
])
def test_malformed_references(value, fragment):
    _, resolver = resolve(f"v: '{value}'\n")
    (found,) = resolver.problems
    assert fragment in found.message and (found.line, found.col) == (1, 4)


# ---- environment over .env -------------------------------------------------------------------

def test_environment_wins_over_dotenv():
    text = bot("{room: '${ROOM}', identity: '${WHO:-nobody}'}")
    spec = check(text, environ={"ROOM": "from-env"}, dotenv={"ROOM": "from-dotenv", "WHO": "dotenv-who"})
    assert spec.room == "from-env" and spec.identity == "dotenv-who"


def test_dotenv_beside_the_bot_file(tmp_path):
    (tmp_path / ".env").write_text("# comment\nexport ROOM='room from dotenv'\nWHO=bob # trailing comment\n"
                                   "BROKEN LINE\nQUOTED=\"a # not a comment\"\n")
    (tmp_path / "bot.yaml").write_text(bot("{room: '${ROOM}', identity: '${WHO}', name: '${QUOTED}'}"))
    spec = check_file(tmp_path / "bot.yaml", environ={})
    assert (spec.room, spec.identity, spec.livekit["name"]) == ("room from dotenv", "bob", "a # not a comment")
    spec = check_file(tmp_path / "bot.yaml", environ={"WHO": "alice"})
    assert spec.identity == "alice"


def test_dotenv_in_the_valid_fixtures_folder(monkeypatch):
    monkeypatch.delenv("LKRUN_FIXTURE_PRECEDENCE", raising=False)
    spec = check_file(VALID / "env_and_escapes.yaml", environ={})
    assert spec.room == "room-from-dotenv" and spec.identity == "identity-from-dotenv"
    assert spec.params["audio_out_sample_rate"] == 24000 and spec.params["audio_in_enabled"] is False
    assert spec.description == "costs ${PRICE} (a literal dollar-brace)"
    assert spec.vars == {"label": "price: ${PRICE}"}
    spec = check_file(VALID / "env_and_escapes.yaml", environ={"LKRUN_FIXTURE_PRECEDENCE": "from-environment"})
    assert spec.identity == "from-environment"


def test_dotenv_syntax_the_hand_parser_lacked(tmp_path):
    """python-dotenv: multi-line quoted values, escapes in double quotes, a quote inside a
    value, a comment after a quoted value, no ${VAR} expansion inside the file."""
    (tmp_path / ".env").write_text(
        'PEM="-----BEGIN KEY-----\nabc\n-----END KEY-----"\n'
        'ESCAPED="tab\\there"\n'
        'INNER="say \\"hi\\""\n'
        "  export   SPACED = 'x' # comment after quotes\n"
        "LITERAL=${HOME}/x\n")
    unparsed: list[int] = []
    values = read_dotenv(tmp_path / ".env", unparsed)
    assert unparsed == []
    assert values["PEM"] == "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    assert values["ESCAPED"] == "tab\there"
    assert values["INNER"] == 'say "hi"'
    assert values["SPACED"] == "x"
    assert values["LITERAL"] == "${HOME}/x"  # taken literally, as before


def test_an_unparsable_dotenv_line_is_a_located_warning(tmp_path, capfd):
    (tmp_path / ".env").write_text("ROOM=lobby\nNOT A STATEMENT\nWHO=bob\n")
    (tmp_path / "bot.yaml").write_text(bot("{room: '${ROOM}', identity: '${WHO}'}"))
    spec = check_file(tmp_path / "bot.yaml", environ={})
    assert (spec.room, spec.identity) == ("lobby", "bob")
    (warning,) = spec.warnings
    assert (Path(warning.file).name, warning.line, warning.severity) == (".env", 2, "warning")
    assert "not KEY=VALUE" in warning.message
    assert "python-dotenv" not in capfd.readouterr().err  # no bare logging line


def test_read_dotenv_ignores_unreadable_files(tmp_path):
    assert read_dotenv(tmp_path / "missing.env") == {}
    (tmp_path / ".env").write_bytes(b"A=\xff\n")
    assert read_dotenv(tmp_path / ".env") == {}


# ---- unset variables -------------------------------------------------------------------------

def test_unset_is_one_error_at_its_line():
    text = bot(rest="session:\n  max_duration: ${MAX_SECONDS}\nvars:\n  who: 'hello ${WHO_IS_IT}'\n")
    assert errors(text) == [
        "bot.yaml:4:17: error: environment variable 'MAX_SECONDS' is not set",
        "bot.yaml:6:8: error: environment variable 'WHO_IS_IT' is not set",
    ]


def test_unset_in_a_required_field_is_reported_once():
    assert errors(bot("{room: '${ROOM}'}")) == ["bot.yaml:2:17: error: environment variable 'ROOM' is not set"]


def test_an_unknown_key_holding_an_unset_variable_is_still_reported():
    assert errors(bot("{room: lobby, rooom: '${NOPE}'}")) == [
        "bot.yaml:2:24: error: unknown key 'rooom' in livekit (did you mean 'room'?)",
        "bot.yaml:2:31: error: environment variable 'NOPE' is not set",
    ]


def test_allow_missing_turns_unset_into_warnings():
    text = bot("{room: '${ROOM}'}", "params:\n  audio_out_sample_rate: ${RATE}\n"
                                     "pipeline:\n  - llm: {type: openai_llm, api_key: '${NO_KEY}'}\n")
    spec = check(text, allow_missing_env=True)
    assert [(w.severity, w.message) for w in spec.warnings] == [
        ("warning", "environment variable 'ROOM' is not set"),
        ("warning", "environment variable 'RATE' is not set"),
        ("warning", "environment variable 'NO_KEY' is not set"),
    ]


def test_validate_allow_missing_env_exits_zero(tmp_path, monkeypatch):
    monkeypatch.delenv("LKRUN_TEST_NEVER_SET", raising=False)
    (tmp_path / "bot.yaml").write_text(bot("{room: '${LKRUN_TEST_NEVER_SET}'}"))
    runner = CliRunner()
    strict = runner.invoke(main, ["validate", str(tmp_path / "bot.yaml")])
    assert strict.exit_code == 1 and "error: environment variable 'LKRUN_TEST_NEVER_SET' is not set" in strict.output
    lenient = runner.invoke(main, ["validate", "--allow-missing-env", str(tmp_path / "bot.yaml")])
    assert lenient.exit_code == 0, lenient.output
    assert "warning: environment variable 'LKRUN_TEST_NEVER_SET' is not set" in lenient.output


# ---- secrets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path, secret", [
    (("livekit", "api_key"), True), (("livekit", "api_secret"), True), (("livekit", "token"), True),
    (("livekit", "room"), False), (("pipeline", 0, "llm", "api_key"), True),
    (("pipeline", 0, "llm", "settings"), False), (("on", "connected", 0, "http", "headers", "X"), False),
])
def test_secret_paths(path, secret):
    assert is_secret_path(path) is secret


@pytest.mark.parametrize("field", ["api_key", "api_secret", "token"])
@pytest.mark.parametrize("value", [SECRET, "prefix-${K}", "'${K}-suffix'", "12345", "true", "[a, b]", "{a: b}"])
def test_secret_fields_only_accept_a_reference(field, value):
    text = bot(f"\n  room: lobby\n  {field}: {value}\n")
    with pytest.raises(ConfigError) as info:
        check(text, environ={"K": "from-env"})
    (found,) = info.value.problems
    assert found.message.startswith(f"'livekit.{field}' is a secret and must come from the environment")
    assert (found.line, found.col) == (4, 5 + len(field))
    assert SECRET not in info.value.render() and SECRET not in info.value.to_json()


def test_stage_api_key_is_a_secret():
    text = bot(rest=f"pipeline:\n  - llm: {{type: openai_llm, api_key: {SECRET}}}\n")
    (line,) = errors(text)
    assert line == "bot.yaml:4:38: error: 'pipeline.llm.api_key' is a secret and must come from the environment, " \
                   "not be written in the file"
    assert SECRET not in line


def test_secrets_are_collected_and_masked():
    text = bot("{room: lobby, api_key: '${KEY}', api_secret: '${SECRET}'}",
               "pipeline:\n  - llm: {type: openai_llm, api_key: '${OPENAI}'}\n"
               "on:\n  connected:\n"
               "    - http: {url: 'https://example.com/x', headers: {Authorization: 'Bearer ${TOKEN}'}}\n")
    spec = check(text, environ={"KEY": "key-1234", "SECRET": SECRET, "OPENAI": "sk-openai-9", "TOKEN": "tok-777"})
    assert spec.livekit["api_secret"] == SECRET
    assert {"key-1234", SECRET, "sk-openai-9", "Bearer tok-777", "tok-777"} <= spec.secrets
    shown = mask(f"key-1234 {SECRET} sk-openai-9 Bearer tok-777", spec.secrets)
    assert shown == " ".join([MASK] * 4)


def test_mask_longest_first_and_ignores_tiny_values():
    assert mask("abcdef abc ab", {"abc", "abcdef", "ab", ""}) == f"{MASK} {MASK} ab"


def test_secrets_never_in_config_errors():
    """A secret resolved into a field that then fails validation is masked in the message."""
    text = bot("{room: lobby, api_secret: '${S}', url: '${S}'}")
    with pytest.raises(ConfigError) as info:
        check(text, environ={"S": SECRET})
    assert SECRET not in info.value.render() and SECRET not in info.value.to_json()
    assert MASK in info.value.render()


def _secret_bot(tmp_path) -> Path:
    path = tmp_path / "secret_bot.yaml"
    path.write_text(bot("{room: lobby, api_secret: '${LKRUN_TEST_SECRET}', url: '${LKRUN_TEST_SECRET}'}",
                        "on:\n  data_received:\n    - http: {url: 'https://example.com/x', "
                        "headers: {Authorization: '${LKRUN_TEST_SECRET}'}}\n"
                        "    - log: 'header was ${LKRUN_TEST_SECRET}'\n"))
    return path


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_never_in_validate_output(tmp_path, monkeypatch, fmt):
    monkeypatch.setenv("LKRUN_TEST_SECRET", SECRET)
    result = CliRunner().invoke(main, ["validate", "--format", fmt, str(_secret_bot(tmp_path))])
    assert result.exit_code == 1
    assert SECRET not in result.output
    if fmt == "json":
        report = json.loads(result.stdout)
        assert MASK in json.dumps(report)


def test_secrets_never_in_simulate_output(tmp_path, monkeypatch):
    monkeypatch.setenv("LKRUN_TEST_SECRET", SECRET)
    path = tmp_path / "sim.yaml"
    path.write_text(bot("{room: lobby, api_secret: '${LKRUN_TEST_SECRET}'}",
                        "on:\n  data_received:\n    - log: 'the secret is ${LKRUN_TEST_SECRET}'\n"
                        "    - send: {data: {leak: '${LKRUN_TEST_SECRET}'}}\n"
                        "    - http: {url: 'https://example.com/x', headers: {X: '${LKRUN_TEST_SECRET}'}}\n"))
    result = CliRunner().invoke(main, ["simulate", str(path), "data_received", "--data", "hi"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert MASK in result.output


# ---- values Python cannot type (were tracebacks) -----------------------------------------------

@pytest.mark.parametrize("default, expected", [
    (".inf", float("inf")), ("-.inf", float("-inf")), ("+.INF", float("inf")),
    (".nan", ".nan"), (".NaN", ".NaN"),  # NaN stays text, as the loader keeps it in place
])
def test_infinity_and_nan_defaults_type_like_the_loader(default, expected):
    data, resolver = resolve(f"v: '${{X:-{default}}}'\n")
    assert data == {"v": expected} and resolver.problems == []
    in_place = load_text(f"v: {default}\n", "bot.yaml").data
    assert data == in_place


def test_infinity_in_a_whole_bot_is_checked_not_a_crash():
    check(bot(rest="vars:\n  big: ${BIG:-.inf}\n  no: ${NO:-.nan}\n"))
    assert errors(bot(rest="session: {idle_timeout: '${T:-.nan}'}\n"))  # text where a number goes


@pytest.mark.parametrize("source", ["default", "environment"])
def test_a_number_past_pythons_digit_limit_is_an_error_at_its_value(source):
    digits = "7" * 5000
    text = bot(rest=f"vars:\n  n: ${{N:-{digits}}}\n" if source == "default" else "vars:\n  n: ${N}\n")
    found = errors(text, environ={"N": digits} if source == "environment" else {})
    assert found == ["bot.yaml:4:6: error: '${N}' gives a number with more than 4300 digits"]
    assert digits[:50] not in "\n".join(found)


def test_a_too_long_number_in_a_typed_field_is_reported_once():
    found = errors(bot(rest="session: {idle_timeout: '${T:-" + "5" * 4400 + "}'}\n"))
    assert found == ["bot.yaml:3:25: error: '${T}' gives a number with more than 4300 digits"]
