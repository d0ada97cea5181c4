"""Survey page views per second and p99, beside GET /healthz on the same server in the same run.

Run from the repository root:  python bench/pages.py [--duration 10] [--workers 1]

A fresh organisation (tests.conftest.make_org), the real server (`feedback serve`), then wrk with
64 connections and 2 threads: GET /healthz (the framework floor), then GET /s/{token} — the citizen
page a QR code opens, in the touchpoint's language — and the same page with `?case=` (the
per-case code printed on receipts). The page is rendered once per variant and cached; each view
only swaps in a fresh form id, so the ratio to /healthz shows what that costs. Target: >= 50 %.
A last check fetches the page twice and confirms the form ids differ (the cache never serves one
id twice).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import environment, load_average, run_wrk, serving  # noqa: E402

from tests.conftest import make_org  # noqa: E402

TARGET = 0.50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args(argv)
    lines = [line.replace("bench/ingest.py", "bench/pages.py") for line in environment(args.workers)] + [""]
    with tempfile.TemporaryDirectory(prefix="feedback-pages-") as tmp:
        org = make_org(Path(tmp) / "pages.db")
        with serving(org.db, args.workers) as server:
            ids = {
                re.search(r'name="form_id" value="([^"]+)"', httpx.get(f"{server.url}/s/tp-a1").text)[1]
                for _ in range(2)
            }
            size = len(httpx.get(f"{server.url}/s/tp-a1").content)
            run_wrk("warm-up", server, "/healthz", 1)
            floor = run_wrk("GET /healthz", server, "/healthz", args.duration)
            page = run_wrk("GET /s/{token}", server, "/s/tp-a1", args.duration)
            case = run_wrk("GET /s/{token}?case=", server, "/s/tp-a1?case=000.00.17.H33-240115-0001", args.duration)
    lines.append(f"wrk 2 threads x 64 connections, {args.duration} s each; survey page {size:,} bytes")
    lines.append("")
    lines.append(f"{'endpoint':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'/ floor':>9}")
    for result in (floor, page, case):
        ratio = result.rps / floor.rps if floor.rps else float("nan")
        lines.append(
            f"{result.label:<28}{result.rps:>10,.0f}{result.p50_ms:>9.2f}{result.p99_ms:>9.2f}"
            f"{result.errors:>8}{ratio:>9.1%}"
        )
    worst = min(page.rps, case.rps) / floor.rps if floor.rps else 0.0
    lines.append("")
    verdict = "met" if worst >= TARGET else "MISSED"
    lines.append(f"survey page / healthz: {worst:.1%}  (target >= {TARGET:.0%}: {verdict})")
    lines.append(f"form ids unique across views: {'yes' if len(ids) == 2 else 'NO'}")
    lines.append(f"load average at end: {load_average()}")
    print("\n".join(lines))
    return 0 if len(ids) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
