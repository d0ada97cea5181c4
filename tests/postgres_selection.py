"""Which tests need their PostgreSQL run: a check of the `postgres_covered_elsewhere` marks.

    pip install pytest-cov            # not a test dependency: this is run by hand
    python -m tests.postgres_selection

It runs every two-backend test on PostgreSQL under coverage with one context per test, then reads
which lines of the store layer (`feedback/store/`, `feedback/db.py`: where the two backends differ)
each test reached. It prints the marked tests that reach a store line no unmarked test reaches on
PostgreSQL (they must lose their mark, or another test must reach that line) and, as candidates for
the mark, the unmarked tests whose store lines the others all reach. A candidate is marked only after
reading it: a test whose point is a value SQL computes, a race or a restart keeps its PostgreSQL run
even when its lines are reached elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".coverage.postgres-selection"


def measure() -> None:
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "4", "--dist", "loadscope"]
        + ["--backends", "postgresql", "--postgres-everything", "-p", "pytest_cov", "--cov=feedback"]
        + ["--cov-context=test", "--cov-report="],
        cwd=ROOT,
        env={**os.environ, "COVERAGE_FILE": str(DATA)},
        check=False,
    )


def store_lines_per_test() -> dict[str, set[tuple[str, int]]]:
    from coverage import CoverageData

    data = CoverageData(str(DATA))
    data.read()
    reached: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for path in data.measured_files():
        if "/feedback/store/" not in path and not path.endswith("/feedback/db.py"):
            continue
        for line, contexts in (data.contexts_by_lineno(path) or {}).items():
            for context in contexts:
                test = context.split("|")[0]
                if "postgresql" in test:  # the tests without a backend parameter ran on SQLite
                    reached[re.sub(r"\[.*\]$", "", test)].add((path, line))  # a function, all its parameters
    return reached


def marked_tests() -> set[str]:
    marked = set()
    for module in sorted((ROOT / "tests").glob("test_*.py")):
        lines = module.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.strip() == "@pytest.mark.postgres_covered_elsewhere":
                following = next(
                    text for text in lines[number + 1 :] if text.lstrip().startswith(("def ", "async def"))
                )
                name = re.search(r"def (\w+)", following).group(1)  # type: ignore[union-attr]
                marked.add(f"tests/{module.name}::{name}")
    return marked


def main() -> int:
    if "--no-measure" not in sys.argv:
        measure()
    reached = store_lines_per_test()
    marked = marked_tests()
    by_unmarked = set().union(*(lines for test, lines in reached.items() if test not in marked))
    wrong = {test: reached[test] - by_unmarked for test in marked if reached.get(test, set()) - by_unmarked}
    for test, lines in sorted(wrong.items()):
        shown = ", ".join(f"{Path(path).name}:{line}" for path, line in sorted(lines)[:5])
        print(f"MARKED BUT NEEDED  {test}  ({len(lines)} store lines only it reaches: {shown})")
    # How many unmarked tests reach each line: a candidate's lines are each reached by another one too.
    reaching = Counter(line for test, lines in reached.items() if test not in marked for line in lines)
    for test in sorted(reached.keys() - marked):
        if all(reaching[line] > 1 for line in reached[test]):
            print(f"candidate          {test}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
