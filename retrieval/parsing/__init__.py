"""Bytes -> text blocks with structure (page, heading path). Knows nothing of Django.

Parsing untrusted files runs in a child process (`parse_isolated`) with memory, CPU and time limits,
so a hostile file fails its own document with a readable reason and never takes the worker down.
The formats live apart: `detect` (what a file is), `pdf` (with `pdf_text`, its layout, and `ocr`, its
scanned pages), `office` (DOCX, PPTX, XLSX, ODT), `markup` (Markdown, HTML, text, CSV, email, EPUB),
`mail` (an email with its attachments), `image` (photos and scans, by OCR), on `base`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .base import Block, ParseError, UnsupportedType, _Budget, spelled_out
from .detect import (
    EXTENSIONS,
    FOLDER_EXTENSIONS,
    FOLDER_NAMES,
    FOLDER_SKIPPED,
    SUPPORTED_NAMES,
    detect_kind,
    folder_skips,
)
from .image import parse_image
from .mail import parse_email
from .markup import parse_code, parse_csv, parse_epub, parse_html, parse_markdown, parse_text
from .ocr import Ocr
from .ocr import languages_for as ocr_languages_for
from .office import parse_docx, parse_odt, parse_pptx, parse_xlsx
from .pdf import parse_pdf

__all__ = [
    "EXTENSIONS",
    "FOLDER_EXTENSIONS",
    "FOLDER_NAMES",
    "FOLDER_SKIPPED",
    "SUPPORTED_NAMES",
    "Block",
    "IsolatedParser",
    "Ocr",
    "ParseError",
    "UnsupportedType",
    "detect_kind",
    "folder_skips",
    "ocr_languages_for",
    "parse",
    "parse_isolated",
]


PARSERS = {
    "pdf": parse_pdf,
    "docx": parse_docx,
    "markdown": parse_markdown,
    "html": parse_html,
    "text": parse_text,
    "code": parse_code,
    "csv": parse_csv,
    "pptx": parse_pptx,
    "xlsx": parse_xlsx,
    "email": lambda path, budget: parse_email(path, budget, PARSERS),  # its attachments by their own
    "epub": parse_epub,
    "odt": parse_odt,
    "image": parse_image,
}


Progress = Callable[[int, int], None]  # (done, of): pages read by OCR so far


def parse(
    path: str | Path, kind: str, *, max_chars: int, ocr: Ocr | None = None, progress: Progress | None = None
) -> list[Block]:
    """Parse in this process. Use `parse_isolated` for untrusted files."""
    blocks = [
        Block(spelled_out(b.text), b.page, [spelled_out(h) for h in b.headings])
        for b in PARSERS[kind](Path(path), _Budget(max_chars, ocr=ocr, progress=progress))
    ]
    if not blocks:
        raise ParseError("the document contains no text")
    return blocks


TEMP_FILE_MAX = 256 * 1024 * 1024


class IsolatedParser:
    """A long-lived child process that parses one file at a time under rlimits.

    Reusing the child keeps a Python start-up off every document; a file that hangs it, blows its
    memory limit or crashes it costs only that file, and the next call starts a fresh child.
    The child answers with one JSON line, after a line per page it read by OCR; `timeout_s` bounds
    the time between two lines, so a long scan may take its time while a hung parser is still stopped.
    """

    RECYCLE_AFTER = 200  # documents; bounds fragmentation and anything a parser may leak

    def __init__(self, *, timeout_s: int, memory_mb: int):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._proc: subprocess.Popen | None = None
        self._served = 0
        self._pending = b""  # what the child wrote past the last line read
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        memory = self.memory_mb * 1024 * 1024

        def limit() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            # The parser writes only temporary files (pypdf hands JBIG2 images to jbig2dec through one,
            # an email's attachments are parsed from one), bounded.
            resource.setrlimit(resource.RLIMIT_FSIZE, (TEMP_FILE_MAX, TEMP_FILE_MAX))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # the project root
        self._served, self._pending = 0, b""
        return subprocess.Popen(
            [sys.executable, "-m", "retrieval.parsing", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # pypdf warns a lot on bad files; a full pipe would hang the child
            preexec_fn=limit,
            env=env,
        )

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def parse(
        self,
        path: str | Path,
        kind: str,
        *,
        max_chars: int,
        ocr: Ocr | None = None,
        progress: Progress | None = None,
    ) -> list[Block]:
        if kind not in PARSERS:
            raise UnsupportedType(f"unknown document kind {kind!r}")
        with self._lock:
            if self._proc is None or self._proc.poll() is not None or self._served >= self.RECYCLE_AFTER:
                self.close()
                self._proc = self._start()
            proc = self._proc
            request = {"kind": kind, "path": str(path), "max_chars": max_chars, "ocr": ocr and asdict(ocr)}
            try:
                proc.stdin.write((json.dumps(request) + "\n").encode())
                proc.stdin.flush()
            except BrokenPipeError:
                self.close()
                raise ParseError("the parser process could not be started") from None
            self._served += 1
            while True:
                line = self._read_line(proc)  # its ParseErrors (time, crash) are the file's own
                try:
                    result = json.loads(line)
                except ValueError:
                    self.close()
                    raise ParseError("the parser returned garbage for this file") from None
                if "progress" not in result:
                    break
                if progress is not None:
                    try:
                        progress(*result["progress"])
                    except BaseException:
                        self.close()  # the child is mid-answer: the next file must not read the rest
                        raise
        if result.get("restart"):
            self.close()
        if "error" in result:
            raise ParseError(result["error"])
        return [Block(**b) for b in result["blocks"]]

    def _read_line(self, proc: subprocess.Popen) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        fd = proc.stdout.fileno()
        while True:
            if b"\n" in self._pending:
                line, _, self._pending = self._pending.partition(b"\n")
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise ParseError(f"parsing took longer than {self.timeout_s} s and was stopped")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            data = os.read(fd, 1 << 20)
            if not data:
                code = proc.wait()
                self.close()
                if code < 0:
                    name = signal.Signals(-code).name
                    raise ParseError(f"the parser crashed on this file ({name}); the file may be malicious")
                raise ParseError(f"the parser stopped on this file (exit code {code})")
            self._pending += data


_parsers: dict[tuple[int, int], IsolatedParser] = {}


def parse_isolated(
    path: str | Path,
    kind: str,
    *,
    max_chars: int,
    timeout_s: int,
    memory_mb: int,
    ocr: Ocr | None = None,
    progress: Progress | None = None,
) -> list[Block]:
    """Parse untrusted bytes in this process's parser child; failures become readable ParseErrors."""
    key = (timeout_s, memory_mb)
    if key not in _parsers:
        _parsers[key] = IsolatedParser(timeout_s=timeout_s, memory_mb=memory_mb)
    return _parsers[key].parse(path, kind, max_chars=max_chars, ocr=ocr, progress=progress)


def _tell(done: int, of: int) -> None:
    sys.stdout.write(json.dumps({"progress": [done, of]}) + "\n")
    sys.stdout.flush()


def _serve_one(request: dict) -> dict:
    try:
        ocr = Ocr(**request["ocr"]) if request.get("ocr") else None
        blocks = parse(
            request["path"], request["kind"], max_chars=int(request["max_chars"]), ocr=ocr, progress=_tell
        )
        return {"blocks": [asdict(b) for b in blocks]}
    except (ParseError, UnsupportedType) as exc:
        return {"error": str(exc)}
    except MemoryError:
        return {"error": "parsing needed more memory than allowed and was stopped", "restart": True}
    except RecursionError:
        return {"error": "the document is nested too deeply to parse", "restart": True}
    except OSError as exc:
        return {"error": f"the file could not be read ({exc.strerror or exc})"}
    except Exception as exc:  # the child reports any parser failure as the document's error
        return {"error": f"the file could not be parsed ({type(exc).__name__}: {str(exc)[:160]})"}


def _serve() -> int:
    for line in sys.stdin.buffer:
        try:
            out = json.dumps(_serve_one(json.loads(line)))
        except MemoryError:
            out = json.dumps(
                {"error": "parsing needed more memory than allowed and was stopped", "restart": True}
            )
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
        if '"restart": true' in out[-40:]:
            return 0
    return 0
