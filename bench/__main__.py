"""`make bench [ONLY=ingest|retrieval|stream]`: prints a table and writes var/bench/results.json."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .common import ROOT, commit, machine, setup_django

GROUPS = ("ingest", "retrieval", "stream")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--only", choices=GROUPS)
    args = parser.parse_args(argv)
    setup_django()
    results: list[dict] = []
    for group in GROUPS:
        if args.only and group != args.only:
            continue
        module = __import__(f"bench.{group}", fromlist=["run"])
        started = time.perf_counter()
        print(f"== {group}", flush=True)
        results += module.run()
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    previous = json.loads(path.read_text()) if path.exists() and args.only else {"results": []}
    names = {r["name"] for r in results}
    merged = [r for r in previous.get("results", []) if r["name"] not in names] + results
    path.write_text(json.dumps({"commit": commit(), "machine": machine(), "results": merged}, indent=2))
    print(f"\n{'name':45} {'value':>12} {'unit':10} {'peer_value':>12} {'ratio':>8} {'target':>10} met")
    for r in results:
        print(
            f"{r['name']:45} {r['value']:>12} {r['unit']:10} {r.get('peer_value', ''):>12} "
            f"{r.get('ratio', ''):>8} {str(r.get('target', '')):>10} {r.get('met', '')}"
        )
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
