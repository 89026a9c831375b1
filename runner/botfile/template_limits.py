"""Limits that keep a template from crashing Jinja or Python: nesting depth and huge number literals.

Jinja's parser and code generator recurse once (or more) per level of nesting and Python refuses
to compile ~200 nested parentheses, so a deep template would end in a RecursionError or a
SyntaxError instead of a message. Both halves of the template code (compile, static check) ask here.
"""

from __future__ import annotations

MAX_NESTING = 32  # brackets or expression levels; a person never writes this many
MAX_TAGS = 4096  # {{ }} / {% %} in one value: ~0.1 ms each to check, so 25,000 tags took 3 s (the fuzz)


def too_many_tags(text: str) -> str | None:
    """The message when one value holds more template tags than anyone writes by hand."""
    tags = text.count("{{") + text.count("{%")
    if tags <= MAX_TAGS:
        return None
    return (f"this value has {tags} template tags ({{{{ }}}} and {{% %}}), more than the {MAX_TAGS} one value may "
            f"have; split it into several values or actions")


def too_deep(levels: int | None = None) -> str:
    return (f"this template is too deeply nested (more than {levels or MAX_NESTING} levels of brackets, "
            f"attributes, filters or operators); split it into smaller pieces, for example with {{% set %}}")


def number_message(exc: ValueError) -> str:
    if "integer string conversion" in str(exc):
        return "this template has a number with too many digits (the limit is 4300)"
    return f"template error: {exc}"


def deep_brackets(env, text: str) -> int | None:
    """The 1-based line where brackets nest deeper than MAX_NESTING, from the (iterative) lexer."""
    delimiters = 2 * text.count("{{") + text.count("{%") + text.count("{#")  # a quick upper bound first
    if text.count("(") + text.count("[") + text.count("{") - delimiters <= MAX_NESTING:
        return None
    from jinja2.exceptions import TemplateError as JinjaError  # here: plain paths never need Jinja
    depth = 0
    try:
        for lineno, kind, value in env.lex(text):
            if kind == "operator" and value in "([{":
                depth += 1
                if depth > MAX_NESTING:
                    return lineno
            elif kind == "operator" and value in ")]}":
                depth = max(depth - 1, 0)
    except JinjaError:
        return None  # the parser reports the syntax error itself
    return None


def deep_nodes(ast) -> int | None:
    """The line of the first node deeper than MAX_NESTING (`a + b + c ...` nests without brackets)."""
    stack = [(ast, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            return node.lineno
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return None
