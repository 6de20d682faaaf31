"""An email with its attachments: the message itself (`markup.read_email`), then each attachment of
a supported type read by its own parser, under "subject > Attachment: name", so that the report a
colleague mailed is found, and cited, with the mail that sent it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .base import Block, ParseError, TooMuchText, UnsupportedType, _Budget
from .detect import detect_kind
from .markup import read_email
from .ocr import MIN_IMAGE_PX

ATTACHMENTS_READ_MAX = 50  # past these, an attachment is named only

Parser = Callable[[Path, _Budget], list[Block]]


def parse_email(path: Path, budget: _Budget, parsers: Mapping[str, Parser]) -> list[Block]:
    blocks, subject, attachments = read_email(path, budget)
    named: list[str] = []
    for number, (name, payload) in enumerate(attachments):
        label = name or f"attachment {number + 1}"
        if number >= ATTACHMENTS_READ_MAX:
            named.append(label)
            continue
        try:
            parts = _read_attachment(name, payload, budget, parsers)
        except UnsupportedType:
            named.append(f"{label} (not read: not a supported type)")
            continue
        except TooMuchText:
            raise  # the whole email's budget, not this attachment's fault alone
        except ParseError as exc:
            named.append(f"{label} (not read: {exc})")
            continue
        named.append(label)
        if parts is None:
            continue
        # No page numbers: a citation opens the email, whose pages these are not.
        blocks += [Block(b.text, headings=[subject, f"Attachment: {label}", *b.headings]) for b in parts]
    if named:
        blocks.append(Block("Attachments: " + ", ".join(named), headings=[subject]))
    return blocks


def _read_attachment(
    name: str, payload: bytes, budget: _Budget, parsers: Mapping[str, Parser]
) -> list[Block] | None:
    """The attachment's blocks; None for a small image (a signature's logo), which is only named."""
    suffix = Path(name).suffix[:16] if name else ""
    with tempfile.NamedTemporaryFile(suffix=suffix) as file:
        file.write(payload)
        file.flush()
        kind = detect_kind(file.name, name or "attachment")
        if kind == "email":  # a forwarded message: its own text, not its attachments in turn
            return read_email(Path(file.name), budget)[0]
        if kind == "image" and _small(Path(file.name)):
            return None
        return parsers[kind](Path(file.name), budget)


def _small(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return min(image.size) < MIN_IMAGE_PX
    except Exception:  # not readable as an image: its parser says why
        return False
