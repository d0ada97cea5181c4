"""Online backup of the feedback database (ISO 9001 7.5: records protected from loss).

    python deploy/backup.py /var/lib/feedback/feedback.db /var/backups/feedback

Uses SQLite's backup API, so it is consistent while the server keeps writing, then checks the copy
with `PRAGMA integrity_check`. Keeps the newest --keep copies. Run it from cron or a systemd timer.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path


def backup(database: Path, folder: Path, keep: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"feedback-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.db"
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy, pages=4096)
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise RuntimeError(f"{target}: integrity check failed")
    finally:
        copy.close()
        source.close()
    for old in sorted(folder.glob("feedback-*.db"))[:-keep]:
        old.unlink()
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--keep", type=int, default=14, help="copies to keep (default 14)")
    args = parser.parse_args()
    print(backup(args.database, args.folder, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
