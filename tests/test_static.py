"""The browser scripts, read as files: each page's script is one function scope, where a second
declaration of a name silently replaces the first."""

import re
from collections import Counter
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "static" / "js").glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_function_is_declared_twice(script):
    """chat.js once declared a second `follow` (for attached files), which replaced the one that
    follows an answer's stream: a reload mid-answer then never saw the answer finish."""
    names = Counter(re.findall(r"\bfunction\s+([A-Za-z_$][\w$]*)\s*\(", script.read_text()))
    assert not [name for name, n in names.items() if n > 1]
