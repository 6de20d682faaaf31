"""OCR of scanned PDFs (not part of `make bench`): seconds per page and the share of the printed
words read back, through the worker's own isolated parser.

    python -m bench.ocr [--pages N]

The scan is made here: SciFact abstracts (title in large type, then the abstract) set on 300 dpi
letter pages, each turned by up to a degree and blurred a little, saved as JPEG in a PDF, as an
office scanner makes them. Needs Tesseract on PATH.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter

from .common import SHARED, read_jsonl


def scan(pages: int) -> tuple[bytes, list[str]]:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    abstracts = read_jsonl(SHARED / "scifact" / "corpus.jsonl.gz")[: pages * 3]
    body, title = ImageFont.load_default(size=40), ImageFont.load_default(size=64)
    turn, images, printed = random.Random(1), [], []
    for n in range(pages):
        image = Image.new("L", (2550, 3300), 255)
        draw, y = ImageDraw.Draw(image), 250
        for abstract in abstracts[n * 3 : n * 3 + 3]:
            for line in textwrap.wrap(abstract["title"], 55):
                draw.text((250, y), line, font=title, fill=0)
                printed.append(line)
                y += 85
            y += 20
            for line in textwrap.wrap(abstract["text"], 90)[:14]:
                draw.text((250, y), line, font=body, fill=0)
                printed.append(line)
                y += 58
            y += 60
        images.append(image.rotate(turn.uniform(-1, 1), fillcolor=255).filter(ImageFilter.GaussianBlur(0.8)))
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=300, quality=75)
    return out.getvalue(), printed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.ocr")
    parser.add_argument("--pages", type=int, default=10)
    args = parser.parse_args(argv)
    from retrieval.parsing import Ocr, parse_isolated

    data, printed = scan(args.pages)
    with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
        file.write(data)
        file.flush()
        started = time.perf_counter()
        blocks = parse_isolated(file.name, "pdf", max_chars=10**7, timeout_s=120, memory_mb=1536, ocr=Ocr())
        seconds = time.perf_counter() - started
    words = re.compile(r"[A-Za-z0-9]+")
    wanted = Counter(words.findall(" ".join(printed)))
    heads = {b.headings[-1] for b in blocks if b.headings}  # a heading's line is in no block's text
    read = Counter(words.findall(" ".join([*heads, *(b.text for b in blocks)])))
    found = sum(min(n, read[w]) for w, n in wanted.items())
    print(
        f"{args.pages} scanned pages in {seconds:.1f} s ({seconds / args.pages:.2f} s a page); "
        f"{found / sum(wanted.values()):.1%} of the {sum(wanted.values())} printed words read back, "
        f"{sum(read.values()) - found} words read that were not printed; "
        f"{len(heads)} headings found for {args.pages * 3} titles"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
