"""Markdown pipe tables as Docent writes them (HTML, DOCX and CSV tables, when parsed) and reads them
(chunking cuts them between rows under a repeated header; the offline answerer quotes a row with its
column names). Pure functions."""

from __future__ import annotations

import re

_RULE_CELL = re.compile(r":?-{3,}:?")
_BORDER = re.compile(r"(?<!\\)\|")  # an escaped \| belongs to its cell


def is_row(line: str) -> bool:
    return line.lstrip().startswith("|")


def cells(line: str) -> list[str]:
    line = line.strip().removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.strip().replace("\\|", "|") for c in _BORDER.split(line)]


def is_rule(line: str) -> bool:
    """The line under a table's header: |---|:---:|."""
    return is_row(line) and all(_RULE_CELL.fullmatch(c) for c in cells(line))


def markdown_table(rows: list[list[str]]) -> str:
    """Cells as a Markdown pipe table, the first row its header. A single row stays a line of cells."""
    rows = [[re.sub(r"\s+", " ", c).strip().replace("|", "\\|") for c in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if len(rows) < 2:
        return " | ".join(c for row in rows for c in row if c)
    width = max(len(row) for row in rows)
    lines = [f"| {' | '.join(row + [''] * (width - len(row)))} |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * width, *lines[1:]])
