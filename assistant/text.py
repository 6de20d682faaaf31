"""Client text that cannot be kept: NUL characters (PostgreSQL's text refuses them) and unpaired UTF-16
surrogates (no UTF-8 encodes them; the tokenizers and the database fail on them). JSON carries both as
escapes ("\\u0000", "\\ud800"), and a query string as "%00". They are refused where requests come in,
with an error that says so, instead of failing deep inside as a database or tokenizer error."""

import re

MESSAGE = "text must not contain NUL characters or unpaired surrogates"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(value) -> bool:
    """Whether any string in a parsed JSON value (keys included), or in lists and tuples of strings,
    holds such a character."""
    pending = [value]
    while pending:  # a loop, not recursion: a deeply nested body must not overflow the stack
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
    return False
