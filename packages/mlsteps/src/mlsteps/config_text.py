"""Editing a YAML config file as text, so that every line and comment not being changed stays as it is.

A top-level section is its ``key:`` line and the indented lines below it; the comment lines above a key belong
to the reader, not to the section, and are kept. After an edit, ``check_edit`` parses both texts and refuses a
result in which anything but the edited keys changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mlsteps.errors import ConfigError

_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")


def yaml_scalar(value: Any) -> str:
    """A value as YAML text: strings plain where YAML reads them back as the same string, quoted otherwise
    (``Yes``, ``null``, ``1.0`` and ``s3://...`` are quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def quoted(value: Any) -> str:
    """A string always in double quotes (label values: YAML would read ``Yes`` as true and ``1`` as 1)."""
    return json.dumps(str(value), ensure_ascii=False)


def flow_mapping(values: Mapping[str, Any]) -> str:
    """``{key: value, ...}`` on one line; lists and mappings nested in flow style too."""
    return "{" + ", ".join(f"{yaml_scalar(k)}: {_flow(v)}" for k, v in values.items()) + "}"


def _flow(value: Any) -> str:
    if isinstance(value, Mapping):
        return flow_mapping(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return yaml_scalar(value)


def section_span(
    lines: list[str], key: str, indent: int = 0, start: int = 0, stop: int | None = None
) -> tuple[int, int] | None:
    """Line numbers [first, end) of ``key:`` at ``indent`` spaces and the more indented lines under it, within
    lines[start:stop]; trailing blank lines are left out. None if there is no such key."""
    stop = len(lines) if stop is None else stop
    head = re.compile(rf"^ {{{indent}}}{re.escape(key)}:(\s|$)")
    for first in range(start, stop):
        if head.match(lines[first]):
            end = first + 1
            for index in range(first + 1, stop):
                line = lines[index]
                if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                    break
                if line.strip():
                    end = index + 1
            return first, end
    return None


def replace_section(text: str, key: str, block: str, parent: str | None = None) -> str:
    """Replace the section ``key`` (its line and the indented lines under it) with ``block``: a top-level one, or
    one at two spaces under the top-level ``parent``."""
    lines = text.splitlines(keepends=True)
    outer = section_span(lines, parent) if parent else (0, len(lines))
    span = outer and section_span(lines, key, indent=2 if parent else 0, start=outer[0], stop=outer[1])
    if not span:
        where = f"'{key}:' under '{parent}:'" if parent else f"top-level '{key}:'"
        raise ConfigError(f"the config has no {where} section to write into: add it")
    first, end = span
    return "".join(lines[:first]) + block.rstrip("\n") + "\n" + "".join(lines[end:])


def set_scalar(text: str, key: str, value: Any) -> str:
    """Set the top-level ``key: value`` line, keeping a trailing comment."""
    pattern = re.compile(rf"^({re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]+#[^\n]*)?$", re.MULTILINE)
    if not pattern.search(text):
        raise ConfigError(f"the config has no top-level '{key}:' line to set: add '{key}: ...'")
    return pattern.sub(lambda m: m.group(1) + yaml_scalar(value) + (m.group(3) or ""), text, count=1)


def set_entry_key(text: str, section: str, entry: str, key: str, value: Any) -> str:
    """Set ``section.entry.key`` (e.g. catalog.raw.path), whether the entry is a one-line ``{...}`` mapping or a
    block of indented lines."""
    lines = text.splitlines(keepends=True)
    outer = section_span(lines, section)
    inner = outer and section_span(lines, entry, indent=2, start=outer[0] + 1, stop=outer[1])
    if not inner:
        raise ConfigError(f"the config has no '{section}.{entry}' entry: add '  {entry}: {{...}}' under '{section}:'")
    first, end = inner
    prefix, _, rest = lines[first].rstrip("\n").partition(":")
    flow, comment = _split_comment(rest)
    if flow.strip().startswith("{"):
        entry_values = dict(yaml.safe_load(flow) or {})
        entry_values[key] = value
        lines[first] = f"{prefix}: {flow_mapping(entry_values)}{comment}\n"
        return "".join(lines)
    child = section_span(lines, key, indent=4, start=first + 1, stop=end)
    if child is None:
        lines.insert(first + 1, f"    {key}: {yaml_scalar(value)}\n")
    else:
        head, _, tail = lines[child[0]].rstrip("\n").partition(":")
        lines[child[0]] = f"{head}: {yaml_scalar(value)}{_split_comment(tail)[1]}\n"
    return "".join(lines)


def _split_comment(text: str) -> tuple[str, str]:
    """``text`` and its trailing `` # comment`` (a ``#`` inside quotes is not a comment)."""
    quote = ""
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] in " \t"):
            return text[:index].rstrip(), "  " + text[index:]
    return text, ""


def check_edit(before: str, after: str, changed: Iterable[tuple[str, ...]], where: str) -> dict[str, Any]:
    """Parse the edited text and make sure only the ``changed`` keys differ from the original; returns it."""
    try:
        old = yaml.safe_load(before) or {}
        new = yaml.safe_load(after) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"editing {where} would leave invalid YAML ({exc}); nothing was written") from exc
    old, new = json.loads(json.dumps(old, default=str)), json.loads(json.dumps(new, default=str))
    for path in changed:
        _drop(old, path)
        _drop(new, path)
    if old != new:
        raise ConfigError(
            f"editing {where} would change more than the keys it owns ({sorted(changed)}); nothing "
            "was written: check that its sections are laid out as in the template"
        )
    return yaml.safe_load(after)


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    for key in path[:-1]:
        data = data.get(key) if isinstance(data, dict) else None  # type: ignore[assignment]
        if not isinstance(data, dict):
            return
    data.pop(path[-1], None)
