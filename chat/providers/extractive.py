"""The offline answerer: quotes the sentences of the retrieved passages that best answer the question,
each with its [n] citation, streamed in small pieces. It refuses when no sentence is relevant.

Each sentence of the passages is scored by its embedding similarity to the question (when an embedder
is given) and by the question's content words it contains, weighted by their rarity across the
passages (Snowball-stemmed) and counting the words of its section heading and of its paragraph's
first sentence at half weight; the passage's own retrieval similarity breaks ties. A sentence that
leans on the one before ("It runs every minute.") is quoted after its paragraph's first sentence. A
Markdown table row is a sentence that names its columns; a row whose header is not in the passage is
not quoted. A sentence that overlapping passages share (whole, or cut at either end) is quoted once,
whole, scored as its best copy.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable

import numpy as np

from chat.prompts import REFUSAL, Prompt
from chat.terms import WORD as _WORD
from chat.terms import terms
from retrieval import cjk
from retrieval.tables import cells, is_row, is_rule

from .base import ChatModel, Delta, Finish

_BLOCK = re.compile(r"\n{2,}|\n(?=[-*•]\s)")  # paragraphs and list items
# A sentence ends at a stop and a space before a capital; in Chinese and Japanese at a full-width
# stop, with or without its closing quote, and no space after it.
_SENTENCE = re.compile(
    r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|(?<=[。！？])(?![」』”）》])\s*|(?<=[。！？][」』”）》])\s*"
)
_LEANS = re.compile(r"(?:It|Its|They|Their|Them|This|These|That|Those|He|She|His|Her|Such)\b")
_LIST_MARKER = re.compile(r"^(?:[-*+•]|\d{1,3}[.)])\s+")
# A passage's text starting with a word in lower case (not a name such as `asn1_read_value`),
# perhaps inside brackets ("[team ids]}": an overlap begins at a word, whatever precedes it).
_MID_SENTENCE = re.compile(r"\s*[\[({]*[a-z]+\b(?![_.(])")
_CODE = re.compile(r"`[^`]*`")  # inline code, read apart from the prose around it
_FULL_STOP = re.compile(r"[。！？：][」』”）》]?$")
# Streamed a few words at a time; Chinese and Japanese, without spaces, a few characters at a time.
_PIECE = re.compile(rf"[{cjk.CLASS}]{{1,4}}\s*|[^\s{cjk.CLASS}]+\s*|\s+")
# A question asking for an amount ("how large", "how many", "how long") is answered by a sentence
# stating one: those with a figure count a little more for it.
_ASKS_AMOUNT = re.compile(
    r"\bhow (?:many|much|large|big|small|long|often|far|old|fast|high|heavy|tall)\b"
    r"|\bwhat (?:size|amount|number|percentage|share)\b"
    r"|\b(?:maximum|minimum|max|min)\b|\blimits?\b",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"\d|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|"
    r"fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|billions?|dozens?|half|twice)\b",
    re.IGNORECASE,
)
BORROWED_WEIGHT = 0.35  # a follow-up's words carried over from the question before, against its own


def split_sentences(text: str) -> list[str]:
    """Sentences of prose, and each row of a Markdown table as one sentence that names its columns."""
    return [s for s, _ in split_with_leads(text)]


def split_with_leads(text: str) -> list[tuple[str, str]]:
    """(sentence, lead) pairs: a sentence after the first of its paragraph or list item has that
    first sentence as its lead, which says what it is about ("- `make test` runs the tests: ...
    About seven minutes on two cores."); the others have none."""
    out: list[tuple[str, str]] = []
    prose: list[str] = []
    header: list[str] | None = None
    fenced = False
    lines = text.split("\n")
    for i, line in enumerate(lines):
        # A fenced code block is no sentence: joined into one line, it is no answer either.
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            prose.append("")  # the paragraph before it ends there
            continue
        if fenced:
            continue
        if not is_row(line):
            header = None
            prose.append(line)
            continue
        if is_rule(line):
            continue
        if i + 1 < len(lines) and is_rule(lines[i + 1]):
            header = cells(line)
            continue
        row = cells(line)
        if header and len(header) == len(row):
            out.extend(_prose(prose))
            prose = []
            out.append(("; ".join(f"{h}: {c}" for h, c in zip(header, row, strict=True) if c), ""))
        else:
            # No header in the passage (a row too long for one chunk, cut in two, or a table without
            # one): without its column names a row is no answer ("| and table rows ... | 156 / 0 |").
            continue
    out.extend(_prose(prose))
    return out


def _prose(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    intro = ""  # the sentence a list hangs from ("A team's admins can also:")
    for block in _BLOCK.split("\n".join(lines)):
        sentences = [s.strip() for s in _SENTENCE.split(block) if s and len(s.strip()) > 2]
        if not sentences:
            continue
        item = _LIST_MARKER.match(block.lstrip()) is not None
        if not item:
            intro = ""
        out.extend((s, sentences[0] if i else intro if item else "") for i, s in enumerate(sentences))
        if not item and introduces(sentences[-1]):
            intro = sentences[-1]
    return out


_EMPHASIS_LEAD = re.compile(r"^(\*\*|__|\*|_)([^*_]{1,40}?)\1\s+(\S)")


def continues(item: str) -> bool:
    """A list item that goes on its list's announcing sentence ("- rename it, or delete it", "-
    **Rename** it, or ...": a command in bold, then the words it governs), where one that begins
    with a capital or a name stands alone ("- GET /readyz: 200 when ...", "- **Export**: ...")."""
    words = _LIST_MARKER.sub("", item.lstrip())
    lead = _EMPHASIS_LEAD.match(words)
    if lead:
        return lead.group(3).islower()
    return words.lstrip("*_ ")[:1].islower()


def introduces(sentence: str) -> bool:
    """A sentence that only announces what follows it ("The options are:"), no answer alone."""
    return sentence.rstrip().endswith((":", "："))


def _copies(texts: list[str]) -> tuple[list[int], list[bool]]:
    """For each sentence (whitespace folded), the first copy of its group, and whether it may be
    quoted. Consecutive passages overlap: the later one repeats the earlier one's last sentence, whole
    or from inside it (a tail), and the earlier one may end inside it (a head). A part of a whole
    sentence present is not quoted; a head and a tail with no whole between them may be."""
    first: dict[str, int] = {}
    for i, text in enumerate(texts):
        first.setdefault(text, i)

    def whole(text: str) -> str:
        while len(text) >= 20:
            # The shortest sentence holding this one at its start or end, then that one's whole.
            longer = [o for o in first if len(o) > len(text) and (o.endswith(text) or o.startswith(text))]
            if not longer:
                break
            text = min(longer, key=len)
        return text

    rep = {text: whole(text) for text in first}
    quotable = [rep[text] == text for text in texts]
    # A head and a tail of one sentence (a passage ending inside it, the next beginning inside it)
    # hold neither each other: they are one sentence when the head ends with the tail's start (the
    # overlap, 20 characters at least), quoted once, as whichever part answers better.
    pieces = [text for text, w in rep.items() if w == text and len(text) >= 20]
    for head in pieces:
        for tail in pieces:
            at = head.find(tail[:20])
            if at > 0 and tail.startswith(head[at:]) and len(head) - at < len(tail):
                keep, drop = rep[head], rep[tail]
                for text, w in rep.items():
                    if w == drop:
                        rep[text] = keep
    return [first[rep[text]] for text in texts], quotable


class ExtractiveAnswerer(ChatModel):
    name = "docent-extractive"

    def __init__(
        self,
        *,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        max_sentences: int = 3,
        min_score: float = 0.32,
        piece_words: int = 3,
        delay: float = 0.0,
        amount_bonus: float = 0.1,
    ):
        self.embed = embed
        self.max_sentences = max_sentences
        self.min_score = min_score
        self.piece_words = piece_words
        self.delay = delay
        self.amount_bonus = amount_bonus

    def select(self, prompt: Prompt) -> list[tuple[int, str]]:
        """(passage number, sentence) pairs that answer the question, best first, in reading order."""
        # A follow-up ("how often does it run?") is read as the search read it, with the earlier
        # question's words carried over.
        asked = prompt.query or prompt.question
        # The question is read in each language of the passages (a collection's own, as its keyword
        # search reads it), and each sentence in its passage's.
        languages = {p.language for p in prompt.passages}
        question = {
            lang: set(prompt.keywords[lang][0]) if lang in prompt.keywords else set(terms(asked, lang))
            for lang in languages
        }
        if not any(question.values()) or not prompt.passages:
            return []
        units = [(p, s, lead) for p in prompt.passages for s, lead in split_with_leads(p.text)]
        sentences = [(p, s) for p, s, _ in units]
        # A sentence that announces a list ("A team's admins can also:") answers nothing alone; it
        # is quoted before an item of its list that is.
        intros = {(p.n, lead) for p, _, lead in units if lead and introduces(lead)}
        if not sentences:
            return []
        # A sentence is read under its section's heading ("Failure handling" says what "it" is about)
        # and after its paragraph's first sentence, so their words count too, at half weight.
        headings = {p.n: set(terms(p.heading_path, p.language)) for p in prompt.passages}
        # The section's own heading, without the document's title and the chapters above it, which
        # every section under them shares ("Docent API > Health" is about health, not Docent).
        own_headings = {
            p.n: set(terms(p.heading_path.rsplit(" > ", 1)[-1], p.language)) for p in prompt.passages
        }
        leads = [set(terms(lead, p.language)) for p, _, lead in units]
        words = [set(terms(s, p.language)) for p, s in sentences]
        # Words met only inside code (`--mode hybrid|dense|keyword`) name options, not what a
        # sentence says; a question in prose counts them at half weight, unless the section's own
        # heading says them (`POST /api/v1/search` under "Search" is what search is done with).
        # (A sentence whose backticks do not pair, cut inside code by an overlap, is read as it stands.)
        in_prose = words
        if "`" not in prompt.question:
            in_prose = [
                set(terms(_CODE.sub(" ", s), p.language)) if "`" in s and s.count("`") % 2 == 0 else w
                for (p, s), w in zip(sentences, words, strict=True)
            ]
        df = Counter(t for sentence_words in words for t in sentence_words)
        n = len(sentences)
        weight = {
            lang: {t: math.log(1 + n / (1 + df.get(t, 0))) for t in asked_words}
            for lang, asked_words in question.items()
        }
        # Words a follow-up borrowed from the question before say where to look, not what is
        # asked: "And what should I carry?" after a question about maps is about carrying.
        for lang, weights in weight.items():
            own_words = (
                set(prompt.keywords[lang][1])
                if lang in prompt.keywords
                else set(terms(prompt.question, lang))
            )
            if own_words:
                weight[lang] = {t: w if t in own_words else BORROWED_WEIGHT * w for t, w in weights.items()}
        total = {lang: sum(weights.values()) for lang, weights in weight.items()}
        asks_amount = _ASKS_AMOUNT.search(prompt.question) is not None

        def score_all(similarity: list[float] | None) -> list[tuple[float, int, int, str]]:
            scored = []
            for order, (passage, sentence) in enumerate(sentences):
                if (passage.n, sentence) in intros:
                    continue
                lang = passage.language
                own = question[lang] & words[order]
                context = (question[lang] & (headings[passage.n] | leads[order])) - own
                w = weight[lang]
                coded = own - in_prose[order] - own_headings[passage.n]
                coverage = (
                    sum(w[t] for t in own) - 0.5 * sum(w[t] for t in coded) + 0.5 * sum(w[t] for t in context)
                ) / (total[lang] or 1)
                score = coverage if similarity is None else 0.6 * similarity[order] + 0.4 * coverage
                score += 0.1 * (passage.similarity or 0.0) + 0.02 / passage.n
                if asks_amount and _FIGURE.search(sentence):
                    score += self.amount_bonus
                if score >= self.min_score:
                    scored.append((score, order, passage.n, sentence))
            return scored

        # The offline embedder reads English: to it any two sentences in Chinese or Japanese look
        # alike (0.4 - 0.5, as alike as a question and its answer), so such a question is answered
        # by the words it shares with a sentence alone.
        letters = sum(map(len, _WORD.findall(asked)))
        by_words = self.embed is None or 2 * sum(map(len, cjk.RUN.findall(asked))) > letters
        if by_words:
            scored = score_all(None)
        elif asked != prompt.question:  # a follow-up: mostly as asked, a little as searched
            vectors = self.embed([asked, prompt.question] + [s for _, s in sentences])
            scored = score_all((vectors[2:] @ (0.25 * vectors[0] + 0.75 * vectors[1])).tolist())
            if not scored:
                # Its own words said too little to meet any sentence ("What happens if it is
                # larger?"): read as searched, with the subject it leans on.
                scored = score_all((vectors[2:] @ vectors[0]).tolist())
        else:
            vectors = self.embed([asked] + [s for _, s in sentences])
            scored = score_all((vectors[1:] @ vectors[0]).tolist())
        # Each sentence once, whole, scored as its best copy (a tail may match the question better
        # than the whole sentence it is cut from); of its whole copies, the best scored is quoted
        # (one read after its paragraph's first sentence, say).
        flat = [" ".join(s.split()) for _, s in sentences]
        whole, quotable = _copies(flat)
        group: dict[int, list] = {}  # first whole copy -> [best score of any, copy quoted, its score]
        for score, order, _, _ in scored:
            g = group.setdefault(whole[order], [score, whole[order], -1.0])
            g[0] = max(g[0], score)
            if quotable[order] and score > g[2]:
                g[1], g[2] = order, score
        scored = sorted(
            ((score, at, sentences[at][0].n, sentences[at][1]) for score, at, _ in group.values()),
            key=lambda x: (-x[0], x[1]),
        )
        best = scored[: self.max_sentences]
        if not best:
            return []
        # Drop weak runners-up, then keep the document's own order so the answer reads naturally.
        top = best[0][0]
        kept = sorted((x for x in best if x[0] >= 0.75 * top), key=lambda x: x[1])
        # A sentence that leans on the one before ("It runs every minute.") is quoted after its
        # paragraph's first sentence, which says what "it" is; a list item that goes on the sentence
        # announcing its list ("- rename it"), after that sentence.
        out: list[tuple[int, str]] = []
        for _, order, n_, sentence in kept:
            lead = units[order][2]
            if (
                lead
                and (_LEANS.match(sentence) or (introduces(lead) and continues(sentence)))
                and (n_, lead) not in out
            ):
                out.append((n_, lead))
            if (n_, sentence) not in out:
                out.append((n_, sentence))
        return out

    def answer_text(self, prompt: Prompt) -> str:
        chosen = self.select(prompt)
        if not chosen:
            return REFUSAL
        parts = []
        texts = {p.n: p.text for p in prompt.passages}
        for n, sentence in chosen:
            raw = sentence
            # A passage that begins inside a sentence (its overlap with the passage before) begins
            # with that sentence's tail: quoted, it says so.
            tail = _MID_SENTENCE.match(texts[n]) is not None and texts[n].lstrip().startswith(sentence)
            # Sources are often hard-wrapped, and list items carry their own marker: either would
            # break the quote's own bullet.
            sentence = _LIST_MARKER.sub("", " ".join(cjk.unwrap(sentence).split()))
            # A passage cut inside `code` (one ingested before chunks stopped being cut there) leaves
            # an unpaired backtick at the cut, which would show the rest of the quote as code.
            if sentence.count("`") % 2 and "```" not in sentence:
                if tail:
                    sentence = f"`{sentence}"
                elif texts[n].rstrip().endswith(raw.rstrip()):
                    sentence = f"{sentence}`"
            # A long sentence split at a semicolon: its first clause ends the quote with a full stop.
            sentence = sentence.rstrip(";,；，") or sentence
            if not sentence.endswith((".", "!", "?", ":")) and not _FULL_STOP.search(sentence):
                sentence += "."
            parts.append(f"{'…' if tail else ''}{sentence} [{n}]")
        if len(parts) == 1:
            return f"From your documents: {parts[0]}"
        return "From your documents:\n\n" + "\n".join(f"- {p}" for p in parts)

    async def stream(self, prompt: Prompt, *, max_tokens: int) -> AsyncIterator[Delta | Finish]:
        text = await asyncio.to_thread(self.answer_text, prompt)  # embedding sentences is CPU work
        words = _PIECE.findall(text)
        emitted = 0
        for i in range(0, len(words), self.piece_words):
            if emitted >= max_tokens:
                yield Finish("length", prompt.prompt_tokens, emitted)
                return
            piece = "".join(words[i : i + self.piece_words])
            emitted += len(words[i : i + self.piece_words])
            yield Delta(piece)
            await asyncio.sleep(self.delay)  # yields to the loop between pieces, like a network stream
        yield Finish("stop", prompt.prompt_tokens, emitted)
