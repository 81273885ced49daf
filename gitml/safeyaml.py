"""YAML from files gitml did not write (params.yaml, MLmodel, MLproject): safe, and bounded.

``yaml.safe_load`` never runs code, but it still shares nodes through
aliases: six lines of anchors that each repeat the one before ("billion
laughs") are a small document that becomes millions of values once a reader
walks it. ``load`` counts the values the document holds with every alias
expanded (each shared node once, so the count is cheap) and refuses more
than ``MAX_VALUES``, or a node that contains itself; the parser's recursion
on deep nesting becomes an error too.
"""

from __future__ import annotations

from typing import Any

#: Values a document may hold with its aliases expanded: far above any hand-written config.
MAX_VALUES = 200_000


def load(text: str | bytes, what: str = "YAML") -> Any:
    """Parse one YAML document with ``yaml.SafeLoader``; refuse alias bombs and runaway nesting.

    Raises:
        yaml.YAMLError: not YAML.
        ValueError: too many values once aliases are expanded, a recursive alias, or nested too
            deeply (the message names ``what``).
    """
    import yaml

    try:
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader: no tags that run code
    except RecursionError:
        raise ValueError(f"{what}: nested too deeply") from None
    if expanded_size(data) > MAX_VALUES:
        raise ValueError(f"{what}: more than {MAX_VALUES} values once its YAML aliases are expanded "
                         "(refused, as an alias bomb)")
    return data


def expanded_size(data: Any) -> int:
    """How many values ``data`` holds with shared containers counted each time they appear.

    Iterative, with each container's size computed once; a container that
    contains itself counts as unbounded.
    """
    sizes: dict[int, int] = {}
    busy: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        if done:
            busy.discard(key)
            total = 1
            for child in children:
                total += sizes.get(id(child), 1) if isinstance(child, (dict, list)) else 1
                if total > MAX_VALUES:
                    break
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in busy:
            return MAX_VALUES + 1  # a recursive alias: infinite once expanded
        busy.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if isinstance(child, (dict, list)))
    return sizes.get(id(data), 1)
