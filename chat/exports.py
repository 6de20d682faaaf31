"""A conversation as a Markdown document, for people to keep or share: pure, from stored messages."""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from typing import IO

# What the reader of an export is told about an answer that did not end normally.
_ENDINGS = {
    "refused": "Not found in the documents.",
    "stopped": "Stopped before the end.",
    "interrupted": "Interrupted; the text is what had arrived.",
    "failed": "The answer failed.",
    "streaming": "Still being written when exported.",
    "pending": "Not answered yet when exported.",
}


def _quote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines())


def conversation_markdown(*, title: str, exported_at: str, messages: Iterable[dict]) -> str:
    """The thread shown (the messages marked `shown`) of `messages`, as `chat.selectors.message_out`
    gives them in tree order; an answer regenerated is numbered among its versions."""
    messages = list(messages)
    versions: dict = {}
    for m in messages:
        if m["role"] != "user" and m.get("reply_to"):
            versions.setdefault(m["reply_to"], []).append(m.get("id"))
    out = [f"# {title.strip() or 'Conversation'}", "", f"_Exported from Docent, {exported_at}._", ""]
    for m in messages:
        if not m.get("shown", True):
            continue
        if m["role"] == "user":
            out += ["## Question", "", m["text"].strip(), ""]
            continue
        of = versions.get(m.get("reply_to"), [m.get("id")])
        nth = of.index(m.get("id")) + 1 if m.get("id") in of else 1
        out += ["### Answer" + (f" (version {nth} of {len(of)})" if len(of) > 1 else ""), ""]
        if m["text"].strip():
            out += [m["text"].strip(), ""]
        ending = m["status"] if m["status"] != "complete" else None
        if m.get("error_code") == "moderation_blocked":
            out += ["_Not answered: the question goes against the content policy._", ""]
        elif ending in _ENDINGS:
            out += [f"_{_ENDINGS[ending]}_", ""]
        to_check: dict[int, list[str]] = {}
        for c in m.get("checks") or []:
            to_check.setdefault(c["n"], [])
            to_check[c["n"]] += [v for v in c["missing"] if v not in to_check[c["n"]]]
        if to_check:
            notes = "; ".join(f"[{n}] does not state {', '.join(v)}" for n, v in sorted(to_check.items()))
            out += [f"_To check: {notes}._", ""]
        sources = sorted(m.get("sources") or [], key=lambda s: s.get("n", 0))
        if sources:
            out += ["Sources:", ""]
            for s in sources:
                where = " · ".join(
                    x
                    for x in (s.get("heading_path") or "", f"page {s['page']}" if s.get("page") else "")
                    if x
                )
                link = f" <{s['url']}>" if str(s.get("url", "")).startswith(("https://", "http://")) else ""
                out.append(
                    f"{s.get('n')}. **{s.get('title', '')}**" + (f" ({where})" if where else "") + link
                )
                if s.get("text"):
                    out += ["", _quote(s["text"]), ""]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def file_name(title: str, suffix: str = ".md") -> str:
    """A file name from a conversation's title, safe on any system (letters, digits, space, - and _)."""
    name = "".join(c if c.isalnum() or c in " -_" else " " for c in title).strip()[:80]
    return f"{' '.join(name.split()) or 'conversation'}{suffix}"


def conversations_zip(file: IO[bytes], *, exported_at: str, conversations: Iterable[dict]) -> int:
    """Write a zip of `conversations` to `file`: one Markdown file each ("2026-11-29 Title.md", as
    `conversation_markdown` writes them) and `conversations.json`, every conversation with its
    messages as the API gives them. Each conversation is a dict with "id", "title", "created_at"
    (ISO 8601), "updated_at", "pinned", "folder" (its name, or None) and "messages". Returns how
    many were written."""
    count = 0
    names: set[str] = set()
    # The listing is gathered on the side (a zip writes one member at a time) and added last.
    with (
        zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        tempfile.TemporaryFile() as listing,
    ):
        listing.write(b"[")
        for c in conversations:
            stem = file_name(f"{c['created_at'][:10]} {c['title']}", "")
            name, n = f"{stem}.md", 1
            while name in names:  # the same day and title twice
                n += 1
                name = f"{stem} ({n}).md"
            names.add(name)
            zf.writestr(
                name, conversation_markdown(title=c["title"], exported_at=exported_at, messages=c["messages"])
            )
            listing.write((b",\n" if count else b"\n") + json.dumps({**c, "file": name}).encode())
            count += 1
        listing.write(b"\n]\n")
        listing.seek(0)
        with zf.open("conversations.json", "w") as out:
            shutil.copyfileobj(listing, out)
    return count
