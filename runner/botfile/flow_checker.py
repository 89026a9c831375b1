"""The bot file's Checker, seen through a flow's documents; and two scans of the flow's data."""

from __future__ import annotations

from runner.botfile.check import Checker

# words PyYAML (YAML 1.1, which pipecat loads flow files with) reads as true/false: as a case key
# in pipecat they become "true"/"false", in lkrun (YAML 1.2) they stay words
YAML11_BOOLS = {w: w.lower() in ("yes", "y", "on", "true") for w in
                ("yes", "Yes", "YES", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N")}


class FlowChecker(Checker):
    """Reports into the bot's checker, at positions in whichever file holds the path."""

    @classmethod
    def over(cls, checker: Checker, doc) -> "FlowChecker":
        view = cls.__new__(cls)
        view.__dict__.update(checker.__dict__)  # problems, sandbox, capabilities... are shared
        view.doc = doc
        view._texts = {}
        return view

    def report(self, path, message, hint=None, *, key=False, severity="error"):
        path = tuple(path)
        if any(path[:len(failed)] == failed for failed in getattr(self.doc, "failed", ())):
            return  # an !include that failed is reported once, not again as the value it did not give
        super().report(path, message, hint, key=key, severity=severity)

    def _file(self, path: tuple) -> str:
        return self.doc.file_of(path)

    def _char_at(self, line: int, col: int, path: tuple = ()) -> str:
        text = self.doc.text_of(path)
        lines = self._texts.get(id(text))
        if lines is None:
            lines = self._texts[id(text)] = text.splitlines()
        if 0 < line <= len(lines) and 0 < col <= len(lines[line - 1]):
            return lines[line - 1][col - 1]
        return ""

    def positions(self) -> dict:
        """config path -> (file, line, col), for mapping pipecat's own errors back to the files."""
        found = {}
        for prefix, doc, doc_prefix in self.doc.parts:
            for path, (line, col) in doc.values.items():
                if path[:len(doc_prefix)] == doc_prefix:
                    found[prefix + path[len(doc_prefix):]] = (doc.file, line, col)
        return found


def state_keys(data) -> set[str]:
    """Room state keys some `set` action fills, anywhere in ``data``: the names a flow prompt may use bare."""
    found: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            body = value.get("set")
            if isinstance(body, dict) and isinstance(body.get("values"), dict) and \
                    body.get("scope", "room") == "room":
                found.update(k for k in body["values"] if isinstance(k, str))
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)
    walk(data)
    return found


def case_key_problems(checker, data: dict) -> None:
    """`cases: {yes: next}` means "true" to pipecat and the word "yes" to lkrun: refuse it, say the fix."""
    def scan(functions, at):
        for index, entry in enumerate(functions if isinstance(functions, list) else []):
            to = entry.get("transition_to") if isinstance(entry, dict) else None
            cases = to.get("cases") if isinstance(to, dict) else None
            for key in cases if isinstance(cases, dict) else ():
                path = at + (index, "transition_to", "cases", key)
                if key in YAML11_BOOLS and not _quoted(checker, path):
                    fix = "true" if YAML11_BOOLS[key] else "false"
                    checker.report(path, f"the case '{key}:' is read as {fix} by pipecat's YAML but as the word "
                                         f"'{key}' here", f"write {fix}: if the result is {fix}, or \"{key}\": "
                                                          f"(in quotes) if it is the word", key=True)
    scan(data.get("global_functions"), ("global_functions",))
    for name, node in (data.get("nodes") or {}).items() if isinstance(data.get("nodes"), dict) else ():
        if isinstance(node, dict):
            scan(node.get("functions"), ("nodes", name, "functions"))


def _quoted(checker, path: tuple) -> bool:
    line, col = checker.doc.where(path, key=True)
    return checker._char_at(line, col, path) in "\"'"
