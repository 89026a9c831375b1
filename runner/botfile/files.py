"""Bot files on disk: folders expanded to their *.yaml files, many files checked at once
(two bots with the same room and identity are an error).
"""

from __future__ import annotations

from pathlib import Path

from runner.botfile.errors import ConfigError, Problem


BOT_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIXES = (".test.yaml", ".test.yml")  # conversation tests beside the bots (lkrun test)
FLOW_SUFFIXES = (".flow.yaml", ".flow.yml")  # flow files beside the bots (flow: NAME.flow.yaml)


def is_bot_file(path: Path) -> bool:
    """A *.yaml in a bots folder, but not a test file (NAME.test.yaml), a flow file (NAME.flow.yaml)
    nor a hidden/temp file."""
    name = path.name
    return path.suffix in BOT_SUFFIXES and not name.endswith(TEST_SUFFIXES + FLOW_SUFFIXES) and \
        not name.startswith(".")


def expand(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """Files as given, folders as their *.yaml files (sorted); missing paths are problems."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_bot_file(p) and p.is_file())
            if not found:
                problems.append(Problem(raw, 1, 1, "no .yaml bot files in this folder", severity="warning"))
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            problems.append(Problem(raw, 1, 1, "file not found"))
    return files, problems


def internal_error(file: str, exc: BaseException) -> Problem:
    """A failure of lkrun itself while checking a file: named, located, without the exception text
    (which could hold a secret value from the environment)."""
    return Problem(file, 1, 1, f"lkrun could not check this file: internal error ({type(exc).__name__})",
                   "this is a bug in lkrun; please report it with the file attached")


def check_many(files: list[Path], *, allow_missing_env=False, environ=None, unique_names=False):
    """The one loader (run, validate, reload's start, worker): check each file; two bots with the same
    room and identity are an error, and with ``unique_names`` (worker: a name is an agent name) two
    bots with one name. -> (specs, problems)."""
    from runner.botfile.check import check_file

    specs, problems, seen, names = [], [], {}, {}
    for path in files:
        try:
            spec = check_file(path, allow_missing_env=allow_missing_env, environ=environ)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:  # a checker bug must not hide the other files (nor print a traceback)
            problems.append(internal_error(str(path), exc))
            continue
        problems.extend(spec.warnings)
        if unique_names and spec.name in names:
            problems.append(Problem(str(path), 1, 1, f"bot name '{spec.name}' is also used by {names[spec.name]}; "
                                    "the name is the agent name, so it must be unique per worker"))
            continue
        names[spec.name] = str(path)
        key = identity_key(spec)
        if key in seen:
            from runner.botfile.yamlsafe import load_file
            problems.append(duplicate_problem(spec, load_file(path), seen[key]))
            continue
        seen[key] = str(path)
        specs.append(spec)
    return specs, problems


def identity_key(spec) -> tuple:
    """What LiveKit keeps one of: a participant identity in a room on a server."""
    return (spec.livekit.get("url"), spec.room, spec.identity)


def duplicate_problem(spec, doc, other_file: str) -> Problem:
    """The second bot with the same room and identity: at its identity (or livekit:) line, naming
    the other file with its own line."""
    has_identity = "identity" in ((doc.data or {}).get("livekit") or {})
    where = f"{other_file}:{_identity_line(other_file)}"
    return doc.problem(("livekit", "identity") if has_identity else ("livekit",),
                       f"bot '{spec.name}' uses the same room '{spec.room}' and identity '{spec.identity}' "
                       f"as {where}", "LiveKit would keep only one of them: give each bot its own identity",
                       key=not has_identity)


def _identity_line(file: str) -> str:
    """line:col of the identity (or livekit:) in another bot file, for the message."""
    from runner.botfile.yamlsafe import load_file
    try:
        doc = load_file(file)
        livekit = (doc.data or {}).get("livekit") or {}
        line, col = doc.where(("livekit", "identity") if "identity" in livekit else ("livekit",),
                              key="identity" not in livekit)
        return f"{line}:{col}"
    except (ConfigError, OSError):
        return "1:1"
