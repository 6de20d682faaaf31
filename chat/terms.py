"""Content words as the chat reads them: stop words dropped, stemmed in a collection's language
(the Snowball stemmers PostgreSQL's keyword search uses), Chinese, Japanese and Korean as pairs."""

from __future__ import annotations

import functools
import re

import snowballstemmer

from retrieval import cjk

WORD = re.compile(r"[^\W_]+")  # letters and digits of any script ("Häuser" is one word)

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "then",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "about",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "can",
        "could",
        "should",
        "would",
        "may",
        "might",
        "will",
        "shall",
        "i",
        "you",
        "we",
        "me",
        "my",
        "your",
        "our",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "his",
        "her",
        "there",
        "here",
        "not",
        "no",
        "yes",
        "so",
        "than",
        "too",
        "very",
        "just",
        "also",
        "tell",
        "please",
        "explain",
        "describe",
        "give",
        "show",
        "more",
        "any",
        "some",
    ]
)


@functools.lru_cache(maxsize=32)
def _stemmer(language: str):
    # PostgreSQL's text search configurations use the same Snowball stemmers; "simple" folds case only.
    return None if language == "simple" else snowballstemmer.stemmer(language)


@functools.lru_cache(maxsize=65536)
def stem(word: str, language: str = "english") -> str:
    stemmer = _stemmer(language)
    return word.lower() if stemmer is None else stemmer.stemWord(word.lower())


# A snake_case name is a term of its own as well as its parts, as keyword search reads it
# (`docent_keywords`): `asn1_read_value` is not `asn1_read_value_type`.
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+")


def terms(text: str, language: str = "english") -> list[str]:
    """Content words, stemmed in the language of the passage (or question) they are read for;
    Chinese, Japanese and Korean as pairs of characters, as keyword search reads them."""
    rest, pairs = cjk.split(text)
    words = [stem(w, language) for w in WORD.findall(rest) if w.lower() not in STOPWORDS]
    return words + pairs + [name.lower() for name in _IDENTIFIER.findall(text)]


def share(question: str, text: str, language: str = "english") -> float:
    """The share of the question's content words that `text` holds (0 for a question of none)."""
    asked = set(terms(question, language))
    return len(asked & set(terms(text, language))) / len(asked) if asked else 0.0
