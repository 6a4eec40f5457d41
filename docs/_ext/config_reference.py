"""The configuration reference, written from ``conf/`` itself: every key with its default and comment.

Every key in ``conf/`` carries a one-line comment saying what it does (``tests/conf/test_configs.py``
checks it), so the reference is those comments, not a second text to keep in sync. At the start of
each build this writes ``docs/_generated/config_reference.md`` (git-ignored), which
``configuration.md`` includes: one section per config group, one table per option file.

The YAML is read line by line, not parsed: a parser drops the comments, which are the point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENTRY_POINTS = "Entry points"
KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<dash>-\s+)?(?P<rest>.*)$")
KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z0-9_./@$ {}-]+?):(?:\s+(?P<value>.*)|$)")


@dataclass
class Entry:
    """One line of a config file: a key (dotted path), its value as written, and its comment."""

    key: str
    value: str
    comment: str


@dataclass
class ConfigFile:
    """What a config file says about itself: its header comment, defaults list and keys."""

    path: Path
    header: list[str] = field(default_factory=list)  # comment lines, indentation kept (code examples)
    defaults: list[Entry] = field(default_factory=list)
    # keys, with the comment lines between them as Entry("", "", note) so they stay where they were
    entries: list[Entry] = field(default_factory=list)


def split_comment(text: str) -> tuple[str, str]:
    """``value # comment`` -> (value, comment); a ``#`` inside quotes or ``${...}`` is part of the value."""
    quote, depth = "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        elif char == "#" and depth == 0 and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def read_config(path: Path) -> ConfigFile:
    """The keys, defaults and comments of one YAML file of ``conf/``."""
    config = ConfigFile(path)
    stack: list[tuple[int, str]] = []  # (indent, dotted path) of the open mappings and list items
    items: dict[str, int] = {}  # how many list items each list path has had
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        match = KEY_LINE.match(line)
        assert match is not None  # the pattern matches any line
        indent, rest = len(match["indent"]), match["rest"]
        if rest.startswith("#"):
            note = rest[1:].rstrip()
            if note.strip().startswith("@package"):
                continue
            if not config.entries and not config.defaults:
                config.header.append(note)
            else:
                config.entries.append(Entry("", "", note.strip()))
            continue
        while stack and stack[-1][0] >= indent + (0 if not match["dash"] else 1):
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if match["dash"]:
            index = items.get(parent, 0)
            items[parent] = index + 1
            item = f"{parent}[{index}]"
            value, comment = split_comment(rest)
            key_value = KEY_VALUE.match(value)
            if parent == "defaults":
                group, option = (key_value["key"], key_value["value"] or "") if key_value else ("", value)
                config.defaults.append(Entry(group.strip(), option.strip(), comment))
                continue
            stack.append((indent + len(match["dash"]) - 1, item))
            if key_value is None:
                config.entries.append(Entry(item, value, comment))
                continue
            parent, indent = item, indent + len(match["dash"])  # its first key: handled as any key
        key_value = KEY_VALUE.match(rest)
        if key_value is None:  # a continuation line of a flow value: nothing to document on its own
            continue
        key = f"{parent}.{key_value['key']}" if parent else key_value["key"]
        value, comment = split_comment(key_value["value"] or "")
        if key == "defaults":
            stack.append((indent, key))
            continue
        config.entries.append(Entry(key, value, comment))
        if not value:
            stack.append((indent, key))
    return config


def prose(text: str) -> str:
    """A comment as Markdown text: its `code` spans kept, characters Markdown would act on escaped."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else re.sub(r"([\\<>*\[\]_])", r"\\\1", p) for p in parts)


def cell(text: str) -> str:
    """Text for a Markdown table cell: pipes escaped."""
    return text.replace("|", "\\|")


def header(lines: list[str]) -> list[str]:
    """A file's header comment: indented lines (command examples) as code, the rest as one paragraph."""
    out: list[str] = []
    paragraph: list[str] = []
    code: list[str] = []
    for line in [*lines, ""]:  # the empty line flushes the last paragraph or code block
        if line.startswith("   "):
            out += [" ".join(paragraph), ""] if paragraph else []
            paragraph = []
            code.append(line[3:].rstrip())
            continue
        out += ["```bash", *code, "```", ""] if code else []
        code = []
        if line.strip():
            paragraph.append(prose(line.strip()))
    return out + ([" ".join(paragraph), ""] if paragraph else [])


def code(text: str) -> str:
    """Inline code for a table cell, whatever backticks it holds."""
    if not text:
        return ""
    fence = "``" if "`" in text else "`"
    return f"{fence} {cell(text)} {fence}" if fence == "``" else f"`{cell(text)}`"


def render_file(config: ConfigFile, conf_dir: Path, level: str) -> list[str]:
    """One option file: a heading, its header comment, its defaults list and its keys."""
    relative = config.path.relative_to(conf_dir).as_posix()
    lines = [f"{level} `{relative}`", ""]
    lines += header(config.header)
    if config.defaults:
        lines += ["| defaults: group | option | what |", "|---|---|---|"]
        lines += [f"| {code(d.key)} | {code(d.value)} | {cell(prose(d.comment))} |" for d in config.defaults]
        lines.append("")
    table_open = False
    for entry in config.entries:
        if not entry.key:  # a comment between keys: close the table, say it, go on
            lines += ["", prose(entry.comment), ""] if table_open else [prose(entry.comment), ""]
            table_open = False
            continue
        if not table_open:
            lines += ["| key | default | what |", "|---|---|---|"]
            table_open = True
        lines.append(f"| {code(entry.key)} | {code(entry.value)} | {cell(prose(entry.comment))} |")
    lines.append("")
    return lines


def render(conf_dir: Path) -> str:
    """The whole reference as Markdown: entry points first, then every config group."""
    lines = [f"## {ENTRY_POINTS}", ""]
    lines.append("One file per command (`p3m <task>` or `python src/<task>.py`).")
    lines.append("")
    for path in sorted(conf_dir.glob("*.yaml")):
        lines += render_file(read_config(path), conf_dir, "###")
    groups = sorted(p for p in conf_dir.iterdir() if p.is_dir() and any(p.rglob("*.yaml")))
    for group in groups:
        name = group.name
        lines += [f"## `{name}`", "", f"Choose an option with `{name}=<option>` on the command line.", ""]
        for path in sorted(group.rglob("*.yaml")):
            lines += render_file(read_config(path), conf_dir, "###")
    return "\n".join(lines)


def write_reference(app: Any) -> None:
    """Sphinx ``builder-inited``: (re)write the generated page from ``conf/``."""
    docs = Path(app.srcdir)
    out = docs / "_generated" / "config_reference.md"
    out.parent.mkdir(exist_ok=True)
    text = render(docs.parent / "conf")
    if not out.is_file() or out.read_text() != text:  # unchanged: keep the mtime, no rebuild
        out.write_text(text)


def setup(app: Any) -> dict[str, Any]:
    """Register the hook; the generated page is plain Markdown, so the build stays parallel-safe."""
    app.connect("builder-inited", write_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
