"""The hardened loader: YAML hazards, positions, bombs, and a property test (BotSpec or ConfigError)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.botfile.check import check_document
from runner.botfile.errors import ConfigError
from runner.botfile.spec import BotSpec
from runner.botfile.yamlsafe import MAX_BYTES, MAX_DEPTH, load_bytes, load_file, load_text

ROOT = Path(__file__).resolve().parent.parent


def problem(text: str | bytes):
    """The single problem a broken document raises."""
    with pytest.raises(ConfigError) as info:
        load_bytes(text if isinstance(text, bytes) else text.encode(), "bot.yaml")
    assert len(info.value.problems) == 1, info.value.render()
    return info.value.problems[0]


# ---- hazards ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, col, fragment", [
    ("a:\n\tb: 1\n", 2, 1, "tab character"),
    ("a:\n  b: 1\n c: 2\n", 3, 2, "indentation does not match"),
    ("a:\n  b: 1\n    c: 2\n", 3, 6, "':' is in an unexpected place"),
    ("description: time: now\n", 1, 18, "':' is in an unexpected place"),
    ("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key 'a' (first defined at line 1)"),
    ("x:\n  a: 1\n  a: 2\n", 3, 3, "duplicate key 'a' (first defined at line 2)"),
    ("a: &x 1\n", 1, 4, "anchors ('&x')"),
    ("a: *x\n", 1, 4, "aliases"),
    ("a: !!python/object/apply:os.system ['id']\n", 1, 4, "'!!python/object/apply:os.system'"),
    ("a: !!python/name:os.system\n", 1, 4, "'!!python/name:os.system'"),
    ("a: !!binary aGVsbG8=\n", 1, 4, "'!!binary'"),
    ("a: !!timestamp 2001-12-14\n", 1, 4, "'!!timestamp'"),
    ("a: !env HOME\n", 1, 4, "'!env'"),
    ("a: !secret key\n", 1, 4, "'!secret'"),
    ("a:\n  <<: {b: 1}\n", 2, 3, "merge keys"),
    ('a: "open\nb: 2\n', 1, 4, "quoted value is not closed"),
    ("a: 'open\n", 1, 4, "quoted value is not closed"),
    ("a: {b: 1\n", 1, 4, "'{' is not closed"),
    ("a: [1, 2\n", 1, 4, "'[' is not closed"),
    ("a: {{ x }}\n", 1, 4, "must be in quotes"),
    ("? [a]\n: 1\n", 1, 3, "key must be plain text"),
    ("a: 1\x00\n", 1, 5, "NUL byte"),
    ("a: b\x1b\n", 1, 5, "control character U+001B"),
    ("a: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n", 1, 4 + MAX_DEPTH, "nests deeper"),
    ("- " * (MAX_DEPTH + 1) + "x\n", 1, 2 * MAX_DEPTH + 1, "nests deeper"),
])
def test_hazards_are_located_config_errors(text, line, col, fragment):
    found = problem(text)
    assert fragment in found.message
    assert (found.file, found.line, found.col) == ("bot.yaml", line, col)
    assert found.severity == "error"


def test_not_utf8_points_at_the_bad_byte():
    found = problem(b"a: 1\nb: caf\xe9\n")
    assert (found.line, found.col) == (2, 7)
    assert "UTF-8" in found.message


def test_a_utf8_bom_is_fine():
    assert load_bytes(b"\xef\xbb\xbfa: 1\n", "bot.yaml").data == {"a": 1}


def test_size_cap():
    found = problem(b"a: " + b"x" * MAX_BYTES + b"\n")
    assert "larger than" in found.message


@pytest.mark.parametrize("word", ["on", "off", "yes", "no", "NO", "No", "Yes", "y", "n", "True", "TRUE",
                                  "False", "Off", "ON"])
def test_only_true_and_false_are_booleans(word):
    doc = load_text(f"{word}: {word}\n", "bot.yaml")
    assert doc.data == {word: word}


@pytest.mark.parametrize("text, value", [
    ("true", True), ("false", False), ("1", 1), ("-3", -3), ("1.5", 1.5), ("1e3", 1000.0), ("~", None),
    ("null", None), ("", None), ("0755", "0755"), ("22:22", "22:22"), ("0x1f", "0x1f"), ("1_000", "1_000"),
    ("2001-12-14", "2001-12-14"), (".nan", ".nan"), ("0o17", "0o17"), ("'true'", "true"), ('"1"', "1"),
])
def test_scalar_typing_is_yaml_1_2_core(text, value):
    assert load_text(f"v: {text}\n", "bot.yaml").data == {"v": value}


def test_keys_are_always_text():
    assert load_text("1: a\ntrue: b\nnull: c\n", "bot.yaml").data == {"1": "a", "true": "b", "null": "c"}


def test_empty_and_comment_only_documents_are_none():
    assert load_text("", "bot.yaml").data is None
    assert load_text("# just a comment\n", "bot.yaml").data is None


def test_more_than_one_document_is_an_error():
    found = problem("a: 1\n---\nb: 2\n")
    assert found.line == 2


# ---- positions -------------------------------------------------------------------------------

def test_positions_of_keys_and_values():
    doc = load_text("version: 1\nlivekit:\n  room: lobby\non:\n  connected:\n"
                    "    - say: 'hi'\n    - log: {message: x}\n", "bot.yaml")
    assert doc.keys[("version",)] == (1, 1)
    assert doc.values[("version",)] == (1, 10)
    assert doc.keys[("livekit", "room")] == (3, 3)
    assert doc.values[("livekit", "room")] == (3, 9)
    assert doc.values[("on", "connected", 0)] == (6, 7)
    assert doc.keys[("on", "connected", 0, "say")] == (6, 7)
    assert doc.values[("on", "connected", 0, "say")] == (6, 12)
    assert doc.values[("on", "connected", 1, "log", "message")] == (7, 22)
    assert doc.where(("on", "connected", 1, "log", "message", "nope")) == (7, 22)
    assert doc.where(("livekit", "room"), key=True) == (3, 3)
    assert doc.where(("missing",)) == doc.values[()]


def test_problem_uses_the_position():
    doc = load_text("a:\n  b: 1\n", "x.yaml")
    assert doc.problem(("a", "b"), "bad").render() == "x.yaml:2:6: error: bad"
    assert doc.problem(("a", "b"), "bad", key=True).render() == "x.yaml:2:3: error: bad"


def test_load_file_reports_missing_and_folders(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="folder"):
        load_file(tmp_path)


# ---- bombs -----------------------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("name, text", [
    ("billion_laughs", BILLION_LAUGHS),
    ("alias_first", "a: [*x, *x]\n"),
    ("flow_30000", "a: " + "[" * 30000 + "]" * 30000 + "\n"),
    ("flow_maps_30000", "a: " + "{b: " * 30000 + "1" + "}" * 30000 + "\n"),
    ("block_30000", "- " * 30000 + "x\n"),
    ("block_maps", "".join(" " * i + "k:\n" for i in range(600))),
])
def test_bombs_are_rejected_fast(name, text):
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        check_document(load_text(text, "bomb.yaml"), environ={}, dotenv={})
    assert time.perf_counter() - started < 0.5, name


# ---- property tests: BotSpec or ConfigError, nothing else ------------------------------------

def _seeds() -> list[bytes]:
    paths = sorted((ROOT / "tests" / "fixtures" / "valid").glob("*.yaml"))
    paths += sorted((ROOT / "bots").glob("*.yaml")) + sorted((ROOT / "examples").glob("*.yaml"))
    paths += sorted((ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))[:20]
    return [p.read_bytes() for p in paths]


SEEDS = _seeds()
SETTINGS = settings(deadline=2000, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes | str):
    try:
        doc = load_bytes(raw, "fuzz.yaml") if isinstance(raw, bytes) else load_text(raw, "fuzz.yaml")
        result = check_document(doc, environ={}, dotenv={})
    except ConfigError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" and p.line >= 1 and p.col >= 1 for p in exc.problems)
        exc.render()
        return
    assert isinstance(result, BotSpec)


@SETTINGS
@given(st.text())
def test_any_text_gives_a_spec_or_a_config_error(text):
    _check(text)


@SETTINGS
@given(st.binary())
def test_any_bytes_give_a_spec_or_a_config_error(raw):
    _check(raw)


MUTATION = st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, 1 << 16),
                     st.one_of(st.integers(0, 255), st.sampled_from(list(b"{}[]:-'\"\n \t&*!|>#%@`$?,"))))


def _mutate(seed: bytes, mutations) -> bytes:
    data = bytearray(seed)
    for op, where, byte in mutations:
        pos = where % (len(data) + 1)
        if op == "insert":
            data[pos:pos] = bytes([byte])
        elif data:
            pos = min(pos, len(data) - 1)
            if op == "flip":
                data[pos] = byte
            else:
                del data[pos]
    return bytes(data)


@SETTINGS
@given(st.sampled_from(SEEDS), st.lists(MUTATION, min_size=1, max_size=8))
def test_mutated_fixtures_give_a_spec_or_a_config_error(seed, mutations):
    _check(_mutate(seed, mutations))


LINE_SPLICE = st.tuples(st.sampled_from(SEEDS), st.sampled_from(SEEDS), st.integers(0, 200), st.integers(0, 200))


@SETTINGS
@given(LINE_SPLICE)
def test_spliced_fixtures_give_a_spec_or_a_config_error(splice):
    """Lines of one file spliced into another: structurally plausible YAML with wrong shapes."""
    first, second, cut, take = splice
    a, b = first.splitlines(keepends=True), second.splitlines(keepends=True)
    _check(b"".join(a[: cut % (len(a) + 1)] + b[take % (len(b) + 1):]))


# ---- the nesting pre-scan skips quoted values and comments -----------------------------------

DEEP = "[" * 70 + "]" * 70


@pytest.mark.parametrize("text", [
    f'say: "{DEEP}"\n', f"say: '{DEEP}'\n", f"say: 'it''s {DEEP}'\n", f'say: "a \\" {DEEP}"\n',
    f"a: 1  # {DEEP}\n", f"# {DEEP}\na: 1\n", f'a: ["{DEEP}", "{{{{"]\n', f"a:\n  - '{DEEP}'\n",
])
def test_brackets_inside_quotes_and_comments_do_not_nest(text):
    assert load_text(text, "bot.yaml").data


@pytest.mark.parametrize("text", [
    f"a: it's {'[' * 70}x{']' * 70}\n",   # an apostrophe inside plain text opens no quoted value
    f"a: 'x' {'[' * 70}\n", f"a: x#{'[' * 70}\n",
])
def test_a_quote_or_hash_that_opens_nothing_does_not_hide_deep_nesting(text):
    with pytest.raises(ConfigError):
        load_text(text, "bot.yaml")


def test_a_real_deep_nesting_after_a_quoted_value_is_still_refused():
    text = 'a: "[[[["\nb: ' + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    assert "nests deeper" in problem(text).message


@pytest.mark.parametrize("name, text", [
    ("quotes", "a: [" + "'', " * 60000 + "[" * 100),
    ("apostrophes", "a: b" + "'" * 200000 + "[" * 100),
    ("open_quote", "a: '" + "[" * 200000 + "\n"),
    ("escapes", 'a: ["' + "\\\\" * 100000 + '"' + "[" * 100 + "\n"),
    ("blanks", "a: [" + " " * 200000 + "'x'" + "[" * 100 + "\n"),
    ("comments", "a: 1\n" + " #[\n" * 50000),
])
def test_the_pre_scan_is_linear(name, text):
    from runner.botfile.yamlscan import check_flow_depth

    def best_of_three(sample: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            try:
                check_flow_depth(sample, "big.yaml", MAX_DEPTH)
            except ConfigError:
                pass
            times.append(time.perf_counter() - started)
        return min(times)
    # linear: four times the text takes about four times as long (a ratio, so a busy machine cannot fail it)
    one, four = best_of_three(text), best_of_three(text * 4)
    assert four < 8 * one + 0.02, (name, one, four)


# ---- a deleted closing quote is reported where the quote starts ------------------------------

@pytest.mark.parametrize("text, line, col, until", [
    ('on:\n  x:\n    - say: "Welcome\n    - log: hi\n    - log: "bye"\n', 3, 12, 5),
    ("on:\n  x:\n    - say: 'Welcome\n    - log: hi\n    - log: 'bye'\n", 3, 12, 5),
    ('livekit:\n  room: "lobby\n  identity: "bot"\n', 2, 9, 3),
    ('on:\n  x:\n    - send: {data: "Welcome}\n    - log: "hi"\n', 3, 20, 4),
])
def test_a_deleted_closing_quote(text, line, col, until):
    found = problem(text)
    assert (found.line, found.col, found.message) == (line, col, "a quoted value is not closed")
    quote = text.splitlines()[line - 1][col - 1]
    assert found.hint == (f"add the closing {quote} at the end of this value; without it, the value runs on "
                          f"to the {quote} on line {until}")


def test_an_indentation_mistake_is_still_an_indentation_mistake():
    found = problem('livekit:\n  room: "lobby"\n identity: bot\n')
    assert "indentation" in found.message


def test_an_unknown_escape_in_double_quotes():
    found = problem('on:\n  user_said:\n    - match: "\\d+ minutes"\n')
    assert (found.line, found.col) == (3, 16)  # at the letter after the backslash
    assert found.message == "in double quotes a backslash starts an escape, and '\\d' is not one"
    assert found.hint == ("use single quotes around the value instead of double quotes, "
                          "or write two backslashes: \\\\d")


# ---- the libyaml fast path reads exactly what the pure-Python reference reads ------------------

def _reference(text):
    import runner.botfile.yamlsafe as yamlsafe
    saved, yamlsafe._CBotLoader = yamlsafe._CBotLoader, None
    try:
        return yamlsafe.load_text(text, "f.yaml")
    except ConfigError as exc:
        return exc
    finally:
        yamlsafe._CBotLoader = saved


def _same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _differential_inputs():
    from bench import fuzz_loader
    root = Path(__file__).resolve().parent / "fixtures"
    inputs = [p.read_bytes() for p in sorted(root.rglob("*.yaml"))]
    pool = fuzz_loader.seeds()
    return inputs + [fuzz_loader.case(11, i, pool)[1] for i in range(400)]


def test_the_libyaml_path_reads_what_the_reference_reads():
    import runner.botfile.yamlsafe as yamlsafe
    if yamlsafe._CBotLoader is None:
        pytest.skip("PyYAML without libyaml")
    used = 0
    for raw in _differential_inputs():
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            continue
        if yamlsafe._C_DIFFERS.search(text) or len(text) > yamlsafe.MAX_BYTES:
            continue
        fast = yamlsafe._fast(text, "f.yaml")
        if fast is None:
            continue
        used += 1
        ref = _reference(text)
        assert not isinstance(ref, ConfigError), (text[:200], ref)
        assert _same(fast.data, ref.data) and fast.values == ref.values and fast.keys == ref.keys, text[:200]
    assert used > 100


@pytest.mark.parametrize("text", ["a: 1\nb:\tc\n", "a: {b: c?d}\n", "a: {b: }\n", "? a\n: b\n", "a: >#\n  x\n",
                                  "a: ! x\n", "a: 1\n\ufeffb: 2\n"])
def test_where_libyaml_differs_the_reference_decides(text):
    ref = _reference(text)
    try:
        got = load_text(text, "f.yaml")
    except ConfigError as exc:
        assert isinstance(ref, ConfigError) and exc.render() == ref.render()
    else:
        assert not isinstance(ref, ConfigError) and _same(got.data, ref.data) and got.values == ref.values


def test_errors_are_the_reference_errors_and_positions():
    import runner.botfile.yamlsafe as yamlsafe
    for text in ["a: [1, 2\n", "a: 'x\nb: 2\n", "a: &x 1\nb: *x\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "a: !!python/name:os.system x\n"]:
        with pytest.raises(ConfigError) as fast:
            yamlsafe.load_text(text, "f.yaml")
        assert fast.value.render() == _reference(text).render()
