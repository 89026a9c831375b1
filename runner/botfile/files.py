"""Bot files on disk: folders expanded to their *.yaml files, many files checked at once
(two bots with the same room and identity are an error).
"""

from __future__ import annotations

from pathlib import Path

from runner.botfile.errors import ConfigError, Problem


BOT_SUFFIXES = (".yaml", ".yml")


def expand(paths: list[str]) -> tuple[list[Path], list[Problem]]:
    """Files as given, folders as their *.yaml files (sorted); missing paths are problems."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in BOT_SUFFIXES and p.is_file())
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


def check_many(files: list[Path], *, allow_missing_env=False, environ=None):
    """Check each file; two bots with the same room and identity are an error. -> (specs, problems)."""
    from runner.botfile.check import check_file

    specs, problems, seen = [], [], {}
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
        key = (spec.livekit.get("url"), spec.room, spec.identity)
        if key in seen:
            from runner.botfile.yamlsafe import load_file
            doc = load_file(path)
            has_identity = "identity" in (doc.data.get("livekit") or {})
            problems.append(doc.problem(("livekit", "identity") if has_identity else ("livekit",),
                                        f"bot '{spec.name}' uses the same room '{spec.room}' and identity "
                                        f"'{spec.identity}' as {seen[key]}",
                                        "LiveKit would keep only one of them: give each bot its own identity",
                                        key=not has_identity))
            continue
        seen[key] = str(path)
        specs.append(spec)
    return specs, problems
