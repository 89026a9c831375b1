"""What a template's Jinja parse says independently of its event's variables (the names it loads,
its attribute paths, unknown filters and tests, statements bot files do not support). Plain
paths (``{{ participant.id }}``) never come here: runner/botfile/template_check.py knows them."""

from __future__ import annotations

from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateAssertionError

from runner.botfile.errors import did_you_mean
from runner.botfile.template_check import KnownFacts
from runner.botfile.template_limits import deep_brackets, deep_nodes, number_message, too_deep, too_many_tags
from runner.botfile.template_sandbox import Environment

_checker = Environment(65536)


def _chain(node) -> tuple[nodes.Name, tuple] | None:
    """The root Name and constant attribute path of ``a.b['c']``, or None for anything dynamic."""
    path = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            path.append(node.arg.value)
        else:
            return None
        node = node.node
    return (node, tuple(reversed(path))) if isinstance(node, nodes.Name) and path else None


def _parse(text: str):
    """-> (ast, None) or (None, problem): syntax errors and every nesting limit become problems."""
    try:
        if (line := deep_brackets(_checker, text)) is not None:
            return None, (line - 1, 0, too_deep())
        ast = _checker.parse(text)
        if (line := deep_nodes(ast)) is not None:
            return None, (line - 1, 0, too_deep())
    except TemplateSyntaxError as exc:
        return None, ((exc.lineno or 1) - 1, 0, f"template syntax error: {exc.message}")
    except (RecursionError, MemoryError):
        return None, (0, 0, too_deep())
    except ValueError as exc:
        return None, (0, 0, number_message(exc))
    return ast, None


class Facts(KnownFacts):
    """A template's facts from Jinja's parse, worked out once per distinct text (a 1,000-action
    file repeats many templates; a reload repeats all of them)."""

    __slots__ = ("undeclared", "stored")

    def __init__(self, text: str):
        super().__init__(text)
        self.undeclared, self.stored = frozenset(), frozenset()
        crowded = too_many_tags(text)
        if crowded:
            self.failed = (0, 0, crowded)
            return
        ast, self.failed = _parse(text)
        if self.failed:
            self.volatile = self.failed[2] == too_deep() and deep_brackets(_checker, text) is None
            return
        for node in ast.find_all((nodes.Filter, nodes.Test)):
            is_filter = isinstance(node, nodes.Filter)
            kind, known = ("filter", _checker.filters) if is_filter else ("test", _checker.tests)
            if node.name not in known:  # jinja defers these to run time inside {% if %}: check them all now
                self.fixed.append((node.lineno, node.name,
                                   f"unknown {kind} '{node.name}'{did_you_mean(node.name, known)}"))
                node.name = "string" if is_filter else "defined"  # so the checks below can run
        for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            tag = type(node).__name__.lower()
            self.fixed.append((None, node.lineno - 1, f"'{tag}' is not supported in bot templates"))
        try:  # statements can fail jinja's own compile-time checks; plain {{ }} expressions cannot
            if "{%" in text:
                _checker.compile(ast)
        except TemplateAssertionError as exc:
            self.fixed.append((None, (exc.lineno or 1) - 1, f"template error: {exc.message}"))
        except (RecursionError, SyntaxError, MemoryError):  # Python's limits: ~20 nested {% for %}, ...
            self.failed, self.volatile = (0, 0, too_deep()), True
            return
        names = list(ast.find_all(nodes.Name))
        self.stored = frozenset(n.name for n in names if n.ctx != "load")
        if "{%" in text:  # knows loop variables, {% set %}, macro args (only statements declare names)
            self.undeclared = frozenset(meta.find_undeclared_variables(ast))
        else:
            self.undeclared = frozenset(n.name for n in names if n.ctx == "load" and n.name not in _checker.globals)
        self.names = [(n.lineno, n.name) for n in names if n.ctx == "load" and n.name in self.undeclared]
        for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
            root, path = _chain(node) or (None, ())
            if root is not None and root.name not in self.stored and root.name in self.undeclared:
                self.chains.append((root.lineno, root.name, path))
