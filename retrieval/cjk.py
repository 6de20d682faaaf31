"""Chinese, Japanese and Korean text as keyword search reads it: overlapping pairs of characters
(the database's `docent_keywords`, migration 0019, does the same), since these scripts have no
spaces between words for PostgreSQL's parser to find."""

import re

# Han (and its extensions and compatibility forms), hiragana, katakana (and its phonetic extensions
# and half-width forms), Hangul syllables and jamo: the class of migration 0019.
CLASS = (
    r"\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)
RUN = re.compile(f"[{CLASS}]+")
# Chinese and Japanese put no spaces between words (Korean does): each character may end a line.
UNSPACED = re.compile(
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f]"
)

# A character of those scripts, or the full-width punctuation written between them.
_UNSPACED_EDGE = re.compile(UNSPACED.pattern[:-1] + r"\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]")
_WRAPPED = re.compile(f"(?<={_UNSPACED_EDGE.pattern})\\s*\n\\s*(?={_UNSPACED_EDGE.pattern})")


def line_gap(left: str, right: str) -> str:
    """What joins two lines of one paragraph: nothing in Chinese or Japanese text (a line ends
    anywhere in it), else a space."""
    return "" if left and right and _UNSPACED_EDGE.match(left[-1]) and _UNSPACED_EDGE.match(right[0]) else " "


def unwrap(text: str) -> str:
    """Line breaks inside Chinese or Japanese text removed (others are left to the caller)."""
    return _WRAPPED.sub("", text)


def pairs(run: str) -> list[str]:
    """A run's overlapping pairs of characters; a lone character as itself."""
    return [run] if len(run) < 2 else [run[i : i + 2] for i in range(len(run) - 1)]


def split(text: str) -> tuple[str, list[str]]:
    """The text with its runs of these scripts blanked out, and the runs' pairs."""
    found: list[str] = []
    for run in RUN.findall(text):
        found.extend(pairs(run))
    return (RUN.sub(" ", text) if found else text), found
