"""Dev-time generator of ``schemas/stages.catalog.json`` and ``schemas/stages/*.schema.json``.

Walks every STT/LLM/TTS value of ``pipecat.cli.registry.ServiceRegistry`` and reads each
service class from pipecat's installed *source* with ``ast`` (service modules need optional
extras, so they are never imported). ``python -m runner.devtools.catalog_gen`` checks the committed
files, ``--write`` regenerates them; ``tests/test_catalog.py`` fails while they are stale.

References below are ``("class", Mod, ClassDef) | ("value", Mod, expr) | ("module", name)``.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import inspect
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

from runner.botfile.catalog import body_schema

REPO = Path(__file__).resolve().parents[2]
CATALOG_REL, STAGES_REL = "schemas/stages.catalog.json", "schemas/stages"
PKG = Path(importlib.util.find_spec("pipecat").submodule_search_locations[0])
SIMPLE = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Path": "string",
          "list": "array", "List": "array", "Sequence": "array", "tuple": "array", "Tuple": "array",
          "set": "array", "dict": "object", "Dict": "object", "Mapping": "object",
          "None": "null", "NoneType": "null"}
LITERAL_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}
_MODS: dict = {}
_MRO: dict = {}


class Mod:
    """One parsed pipecat module and its top-level symbols (first binding wins)."""

    def __init__(self, name: str, path: Path):
        self.name, self.syms = name, {}
        pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in _toplevel(ast.parse(path.read_text(encoding="utf-8"), str(path)).body):
            if isinstance(node, ast.ClassDef):
                self.syms.setdefault(node.name, ("class", node))
            elif isinstance(node, ast.ImportFrom):
                src = node.module
                if node.level:
                    src = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
                for a in node.names:
                    self.syms.setdefault(a.asname or a.name, ("from", src, a.name))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]  # `import a.b` binds `a`; `import a.b as c` binds a.b
                    self.syms.setdefault(a.asname or top, ("module", a.name if a.asname else top))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                for t in getattr(node, "targets", [getattr(node, "target", None)]):
                    if isinstance(t, ast.Name):
                        self.syms.setdefault(t.id, ("value", node.value))


def _toplevel(body):
    """Module statements, looking inside if/try/with blocks but not into defs."""
    for node in body:
        yield node
        for part in ("body", "orelse", "finalbody") if isinstance(node, (ast.If, ast.Try, ast.With)) else ():
            yield from _toplevel(getattr(node, part, []))
        for handler in getattr(node, "handlers", []):
            yield from _toplevel(handler.body)


def module(name: str) -> Mod | None:
    if name not in _MODS:
        parts, _MODS[name] = name.split("."), None
        base = PKG.joinpath(*parts[1:])
        for p in ([base.with_suffix(".py")] if len(parts) > 1 else []) + [base / "__init__.py"]:
            if parts[0] == "pipecat" and p.is_file():
                _MODS[name] = Mod(name, p)
                break
    return _MODS[name]


def lookup(mod: Mod, name: str, depth: int = 0):
    sym = mod.syms.get(name)
    if sym is None or depth > 25:
        return None
    if sym[0] == "class":
        return ("class", mod, sym[1])
    if sym[0] == "value":
        return resolve(mod, sym[1], depth + 1) or ("value", mod, sym[1])
    if sym[0] == "module":
        return ("module", sym[1]) if module(sym[1]) else None
    src = module(sym[1])
    if src is not None and sym[2] in src.syms:
        return lookup(src, sym[2], depth + 1)
    return ("module", f"{sym[1]}.{sym[2]}") if module(f"{sym[1]}.{sym[2]}") else None


def resolve(mod: Mod, expr, depth: int = 0):
    if depth > 25:
        return None
    if isinstance(expr, ast.Name):
        return lookup(mod, expr.id, depth + 1)
    if isinstance(expr, ast.Subscript):  # Generic[T], Foo[...]
        return resolve(mod, expr.value, depth + 1)
    if isinstance(expr, ast.Attribute):
        base = resolve(mod, expr.value, depth + 1)
        if base and base[0] == "module":
            return lookup(module(base[1]), expr.attr, depth + 1)
        if base and base[0] == "class":
            return member(base, expr.attr, depth + 1)
    return None


def member(cref, name: str, depth: int = 0):
    """A class attribute (nested class or assignment), searched along the MRO."""
    for c in mro(cref):
        for st in c[2].body:
            if isinstance(st, ast.ClassDef) and st.name == name:
                return ("class", c[1], st)
            targets = getattr(st, "targets", [getattr(st, "target", None)])
            if isinstance(st, (ast.Assign, ast.AnnAssign)) and st.value is not None and any(
                    isinstance(t, ast.Name) and t.id == name for t in targets):
                return resolve(c[1], st.value, depth + 1) or ("value", c[1], st.value)
    return None


def bases(cref) -> list:
    found = [resolve(cref[1], b) for b in cref[2].bases]
    return [b for b in found if b and b[0] == "class" and b[2] is not cref[2]]


def mro(cref) -> list:
    """C3 linearization over the bases that resolve inside pipecat (others are skipped)."""
    key = id(cref[2])
    if key not in _MRO:
        _MRO[key] = [cref]  # cycle guard while computing
        seqs = [s for s in [list(mro(b)) for b in bases(cref)] + [bases(cref)] if s]
        out = [cref]
        while seqs:
            head = next((s[0] for s in seqs if not any(s[0] in t[1:] for t in seqs)), seqs[0][0])
            out.append(head)
            seqs = [s for s in ([x for x in s if x != head] for s in seqs) if s]
        _MRO[key] = out
    return _MRO[key]


def _name(node) -> str | None:
    return node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)


def literal(mod: Mod, expr, depth: int = 0):
    """``(True, value)`` for a literal, a constant or an enum member (``.value``), else (False, None)."""
    try:
        return True, json.loads(json.dumps(ast.literal_eval(expr)))  # tuples -> lists; sets fail
    except (ValueError, TypeError, SyntaxError, RecursionError):
        pass
    if isinstance(expr, ast.Attribute) and expr.attr == "value":  # SomeEnum.MEMBER.value
        return literal(mod, expr.value, depth + 1)
    ref = resolve(mod, expr) if depth < 10 else None
    if ref and ref[0] == "value" and ref[2] is not expr:
        return literal(ref[1], ref[2], depth + 1)
    return False, None


def ann(mod: Mod, n) -> set | None:
    """The JSON types an annotation allows; None means 'no constraint'. NotGiven sentinels drop out."""
    if isinstance(n, ast.Constant):  # None, or a string (forward reference)
        return {"null"} if n.value is None else ann(mod, ast.parse(n.value, mode="eval").body)
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
        parts = [ann(mod, n.left), ann(mod, n.right)]
        return None if None in parts else parts[0] | parts[1]
    if isinstance(n, ast.Subscript):
        head, args = _name(n.value), n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
        if head in ("Optional", "Union"):
            parts = [ann(mod, a) for a in args] + ([{"null"}] if head == "Optional" else [])
            return None if None in parts else set().union(*parts)
        if head == "Annotated":
            return ann(mod, args[0])
        if head == "Literal":
            kinds = {type(a.value) for a in args if isinstance(a, ast.Constant)}
            return {LITERAL_TYPES[k] for k in kinds} if kinds <= LITERAL_TYPES.keys() else None
        return {SIMPLE[head]} if SIMPLE.get(head) in ("array", "object") else None
    name = _name(n) or ""
    if name == "NOT_GIVEN" or name.endswith("NotGiven"):
        return set()
    if name in SIMPLE:
        return {SIMPLE[name]}
    ref = resolve(mod, n) if n is not None else None
    if ref and ref[0] == "class":  # enums: StrEnum values come from YAML as strings
        names = {_name(b) for c in mro(ref) for b in c[2].bases}
        if "StrEnum" in names or {"str", "Enum"} <= names:
            return {"string"}
        if "IntEnum" in names:
            return {"integer"}
    return None


def fmt(types: set | None):
    order = sorted(types or (), key=lambda t: (t == "null", t))
    return (order[0] if len(order) == 1 else order) if order else None


def doc_entries(doc: str | None) -> dict[str, str]:
    """``name -> text`` of the ``Args:``/``Parameters:`` entries of a Google-style docstring."""
    out, cur, indent, section = {}, None, None, False
    for line in inspect.cleandoc(doc or "").splitlines():
        s, i = line.strip(), len(line) - len(line.lstrip())
        if s in ("Args:", "Arguments:", "Parameters:"):
            section, indent, cur = True, None, None
        elif section and s:
            section, indent = i > 0, indent if indent is not None else i
            m = re.match(r"\*{0,2}(\w+)\s*(\([^)]*\))?:", s)
            if section and i == indent and m:
                cur, out[m[1]] = m[1], s
            elif section and cur:
                out[cur] += "\n" + s
    return out


def replacement(text: str) -> str | None:
    """Where a deprecation directive or message says to go: settings.<field>, settings, a name."""
    if m := re.search(r"Settings\(\s*(\w+)\s*=", text):
        return f"settings.{m[1]}"
    if re.search(r"settings\s*=|\.Settings\b", text):
        return "settings"
    if re.search(r"no replacement", text, re.I):
        return None
    m = re.search(r"[Uu]se\s+(?:the\s+|an?\s+)?(?::\w+:)?`+~?([\w.]+)", text)
    return m[1] if m else None


def _text(node) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def deprecations(fn: ast.FunctionDef, names: set[str]) -> dict[str, str | None]:
    """Deprecated params of one ``__init__``: ``.. deprecated::`` in its docstring,
    ``self._warn_init_param_moved_to_settings(param, field)`` and ``warn_deprecated("`param` ...")``."""
    out = {}
    for name, text in doc_entries(ast.get_docstring(fn)).items():
        if name in names and (m := re.search(r"\.\. deprecated::[^\n]*(.*)", text, re.S)):
            out[name] = replacement(m[1])
    for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
        fname, args = _name(call.func), [_text(a) for a in call.args]
        if fname == "_warn_init_param_moved_to_settings" and args and args[0] in names:
            field = args[1] if len(args) > 1 and args[1] else next(
                (_text(k.value) for k in call.keywords if k.arg == "settings_field"), None)
            out[args[0]] = f"settings.{field}" if field else "settings"
        elif fname in ("warn_deprecated", "warn") and args and "deprecated" in args[0]:
            if (m := re.match(r"`(?:\w+\()?(\w+)(?:=[^`]*)?\)?`", args[0])) and m[1] in names:
                out.setdefault(m[1], replacement(args[0].split("deprecated", 1)[1]))
    return out


def _init(cls: ast.ClassDef):
    return next((s for s in cls.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)


def _calls(fn) -> list[ast.Call]:
    calls = (n for n in ast.walk(fn) if isinstance(n, ast.Call)) if fn else ()
    return sorted(calls, key=lambda n: (n.lineno, n.col_offset))


def ctor_params(cref) -> dict:
    """Keyword params along the MRO while each ``__init__`` forwards ``**kwargs``, minus those a
    subclass passes to ``super().__init__`` itself (passing them again would be a TypeError)."""
    params, blocked = {}, set()
    for c in mro(cref):
        if (init := _init(c[2])) is None:
            continue
        a = init.args
        items = list(zip(a.args, [None] * (len(a.args) - len(a.defaults)) + a.defaults))[1:]
        items += list(zip(a.kwonlyargs, a.kw_defaults))
        deps = deprecations(init, {arg.arg for arg, _ in items})
        for arg, default in items:
            if arg.arg in params or arg.arg in blocked or arg.arg == "settings":
                continue
            ok, val = literal(c[1], default) if default is not None else (False, None)
            params[arg.arg] = {"type": fmt(ann(c[1], arg.annotation)), "required": default is None,
                               "deprecated": arg.arg in deps, "deprecated_to": deps.get(arg.arg),
                               **({"default": val} if ok else {})}
        supers = (call for call in _calls(init) if _name(call.func) == "__init__")
        blocked |= {k.arg for call in supers for k in call.keywords if k.arg}
        if a.kwarg is None:
            break
    return params


def _field_default(mod: Mod, value):
    if isinstance(value, ast.Call) and _name(value.func) == "field":
        kw = {k.arg: k.value for k in value.keywords}
        if "default" in kw:
            return literal(mod, kw["default"])
        if isinstance(fac := kw.get("default_factory"), ast.Lambda):
            return literal(mod, fac.body)
        return {"dict": (True, {}), "list": (True, [])}.get(_name(fac), (False, None))
    return literal(mod, value) if value is not None else (False, None)


def dataclass_fields(sref) -> dict:
    """Annotated class fields (dataclass or pydantic) along the MRO, bases first; no ClassVars."""
    fields = {}
    for c in reversed(mro(sref)):
        docs = doc_entries(ast.get_docstring(c[2]))
        for st in c[2].body:
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            head = st.annotation.value if isinstance(st.annotation, ast.Subscript) else st.annotation
            if st.target.id.startswith("_") or _name(head) == "ClassVar":
                continue
            ok, val = _field_default(c[1], st.value)
            fields[st.target.id] = {"type": fmt(ann(c[1], st.annotation)), **({"default": val} if ok else {}),
                                    "deprecated": ".. deprecated::" in docs.get(st.target.id, "")}
    return fields


def settings_fields(cref) -> tuple[dict, dict]:
    """Fields of ``cls.Settings`` with the defaults the service's ``__init__`` builds, and aliases."""
    sref = member(cref, "Settings")
    if not sref or sref[0] != "class":
        return {}, {}
    fields, smro = dataclass_fields(sref), {id(c[2]) for c in mro(sref)}
    for c in reversed(mro(cref)):  # base __init__s first, so the most-derived one wins
        seen = set()
        for call in _calls(_init(c[2])):
            target = resolve(c[1], call.func)
            if _name(call.func) == "Settings" or (target and id(target[-1]) in smro):
                for k in (k for k in call.keywords if k.arg in fields and k.arg not in seen):
                    seen.add(k.arg)
                    ok, val = literal(c[1], k.value)
                    fields[k.arg].pop("default", None)
                    fields[k.arg].update({"default": val} if ok else {})
    aliases = member(sref, "_aliases")
    ok, amap = literal(aliases[1], aliases[2]) if aliases and aliases[0] == "value" else (False, {})
    return fields, (amap if ok and isinstance(amap, dict) else {})


def find_class(modname: str, cls: str):
    ref = lookup(module(modname), cls) if module(modname) else None
    return ref if ref and ref[0] == "class" else None


def _entry(kind, label, cls, modname, extra, pip, env_prefix, params, settings, aliases, native):
    return {"kind": kind, "label": label, "class": cls, "module": modname, "extra": extra, "pip": pip,
            "env_prefix": env_prefix, "native": native, "params": params, "settings": settings,
            "settings_aliases": aliases}


def build_catalog() -> tuple[dict, list[str]]:
    """The catalog and a list of the classes/fields that could not be found via AST."""
    from pipecat.cli.registry import ServiceRegistry  # dev time only: imports pipecat
    from pipecat.cli.registry._imports import IMPORTS

    stages, missing = {}, []
    for kind in ("stt", "llm", "tts"):
        for d in getattr(ServiceRegistry, f"{kind.upper()}_SERVICES"):
            cls = d.class_name[0]
            line = next(x for x in IMPORTS[d.value] if re.search(rf"\b{cls}\b", x))
            modname = re.match(r"from ([\w.]+) import", line)[1]
            cref = find_class(modname, cls)
            params = ctor_params(cref) if cref else {}
            settings, aliases = settings_fields(cref) if cref else ({}, {})
            if not settings:
                missing.append(f"{d.value}: {cls} in {modname}")
            extra = m[1] if (m := re.search(r"\[(.+)\]", d.package)) else None
            stages[d.value] = _entry(kind, d.label, cls, modname, extra, f'pip install "{d.package}"',
                                     d.env_prefix, params, settings, aliases, False)
    vad = find_class("pipecat.audio.vad.vad_analyzer", "VADParams")
    if not (vad_fields := dataclass_fields(vad) if vad else {}):
        missing.append("silero: VADParams in pipecat.audio.vad.vad_analyzer")
    stages["silero"] = _entry("vad", "Silero VAD", "SileroVADAnalyzer", "pipecat.audio.vad.silero", "silero",
                              'pip install "pipecat-ai[silero]"', None, {}, vad_fields, {}, True)

    def num(default, lo, hi):
        return {"type": "integer", "default": default, "minimum": lo, "maximum": hi, "deprecated": False}
    espeak = {"voice": {"type": "string", "default": "en-us", "deprecated": False},
              "rate": num(175, 80, 450), "pitch": num(50, 0, 99)}  # words/min; espeak-ng's own limits
    stages["espeak_tts"] = {**_entry("tts", "eSpeak NG (offline, lkrun)", None, None, None, None, None, {},
                                     espeak, {}, True), "system_package": "espeak-ng"}
    return {"pipecat_version": version("pipecat-ai"), "stages": stages}, missing


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> tuple[dict[str, str], list[str]]:
    """``({repo-relative path: text}, missing)`` for the catalog and every per-stage schema."""
    catalog, missing = build_catalog()
    files = {CATALOG_REL: _dump(catalog)}
    for value, entry in catalog["stages"].items():
        files[f"{STAGES_REL}/{value}.schema.json"] = _dump({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"stages/{value}.schema.json", **body_schema(value, entry)})
    return files, missing


def stale_files(files: dict[str, str]) -> list[str]:
    """Paths whose committed text differs from ``files``, plus stray per-stage schemas."""
    out = [p for p, text in files.items()
           if not (REPO / p).is_file() or (REPO / p).read_text(encoding="utf-8") != text]
    stray = (f"{STAGES_REL}/{p.name}" for p in sorted((REPO / STAGES_REL).glob("*.schema.json")))
    return out + [p for p in stray if p not in files]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runner.devtools.catalog_gen", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the files (default: only check them)")
    args = ap.parse_args(argv)
    files, missing = generate()
    kinds = [e["kind"] for e in json.loads(files[CATALOG_REL])["stages"].values()]
    print(f"{len(kinds)} stage types {({k: kinds.count(k) for k in ('vad', 'stt', 'llm', 'tts')})}; "
          f"not found via AST: {missing or 'none'}")
    stale = stale_files(files)
    if args.write:
        (REPO / STAGES_REL).mkdir(parents=True, exist_ok=True)
        for p in stale:
            (REPO / p).write_text(files[p], encoding="utf-8") if p in files else (REPO / p).unlink()
        print(f"updated {len(stale)} file(s)")
    elif stale:
        more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
        print(f"stale: {', '.join(stale[:5])}{more}\nrun: python -m runner.devtools.catalog_gen --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
