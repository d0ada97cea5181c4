"""Catalogue import: a province-sized catalogue (Ben Tre's 578 procedures across 30 units, a touchpoint per
unit) imported by `feedback import catalogue`, beside floors measured in the same run.

Run from the repository root:  python bench/catalogue_import.py [--runs 3] [--postgres]

The catalogue is made by docs/catalogue_example.py (`province()`), as an .xlsx workbook and as a .csv
file. Printed, each the median of --runs:
  * floor, parse: reading the file alone (`feedback.catalogue_import.read_catalogue`, in this process);
  * floor, start-up: `feedback --version`, the interpreter and the package's imports;
  * import: the whole command into a fresh database (`feedback init` first, not timed): reading, checking
    against the database, and one transaction adding 30 units, 578 services and 30 touchpoints (each with
    its audit entry) and publishing the touchpoints' survey from its template;
  * re-import: the same file again, every record unchanged (nothing written);
  * in process, without the command's start-up: the check alone (`import_catalogue(dry_run=True)`, one
    read) and the import (check, then the write job) through a `Store`, on another fresh database.
With --postgres the databases are made on a throwaway PostgreSQL cluster (tests/postgres.py) as well.
The requirement: under 30 s for the import.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from feedback.catalogue_import import import_catalogue, read_catalogue  # noqa: E402
from feedback.db import Store  # noqa: E402
from feedback.plugins import build_plugin_manager  # noqa: E402
from feedback.settings import Settings  # noqa: E402
from tests.conftest import FEEDBACK, source_env  # noqa: E402


def examples():
    spec = importlib.util.spec_from_file_location("catalogue_example", ROOT / "docs" / "catalogue_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run([*FEEDBACK, *args], capture_output=True, text=True, env=source_env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"feedback {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed, done


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    times = [measure() for _ in range(runs)]
    return statistics.median(times), times


def in_process(db: str, catalogue) -> tuple[float, float]:
    """(seconds to check the catalogue, seconds to import it) through a Store, as the web page does."""
    import asyncio

    plugins = build_plugin_manager(Settings())
    store = Store(db, plugins=plugins)
    store.start()
    try:
        started = time.perf_counter()
        asyncio.run(import_catalogue(store, catalogue, plugins=plugins, dry_run=True))
        checked = time.perf_counter()
        summary = asyncio.run(import_catalogue(store, catalogue, plugins=plugins))
        done = time.perf_counter()
    finally:
        store.close()
    assert summary["services"]["added"] == len(catalogue.rows["services"]), summary
    return checked - started, done - checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", action="store_true", help="measure on a throwaway PostgreSQL cluster too")
    options = parser.parse_args()
    catalogue = examples().province()
    counts = {kind: len(lines) for kind, lines in catalogue.items()}
    cluster = None
    if options.postgres:
        from tests.postgres import Cluster  # noqa: PLC0415 - only with --postgres

        cluster = Cluster(durable=True).start()
    with tempfile.TemporaryDirectory() as folder:
        files = {
            "xlsx": Path(folder) / "province.xlsx",
            "csv": Path(folder) / "province.csv",
        }
        files["xlsx"].write_bytes(examples().xlsx_bytes(catalogue))
        files["csv"].write_text(examples().csv_text(catalogue), encoding="utf-8")
        sizes = f"{files['xlsx'].stat().st_size} bytes as .xlsx, {files['csv'].stat().st_size} as .csv"
        print(f"catalogue: {counts} ({sizes})")
        startup, _ = median_of(options.runs, lambda: run("--version")[0])
        print(f"floor, start-up (`feedback --version`): {startup:.2f} s")
        backends = ["sqlite", *(["postgresql"] if cluster else [])]
        number = 0
        try:
            for kind, path in files.items():
                data = path.read_bytes()

                def parse(data: bytes = data, name: str = path.name) -> float:
                    started = time.perf_counter()
                    read = read_catalogue(data, name)
                    assert not read.problems, read.problems[:3]
                    return time.perf_counter() - started

                parsed, _ = median_of(options.runs, parse)
                print(f"\n.{kind}: floor, parse: {parsed * 1000:.0f} ms")
                for backend in backends:
                    imports, again = [], []
                    for _ in range(options.runs):
                        number += 1
                        db = (
                            cluster.create_database() if backend == "postgresql" else str(Path(folder) / f"{number}.db")
                        )
                        run("init", "--db", db)
                        elapsed, done = run("import", "catalogue", "--db", db, str(path))
                        summary = json.loads(done.stdout)
                        assert summary["services"]["added"] == counts["services"], summary
                        imports.append(elapsed)
                        elapsed, done = run("import", "catalogue", "--db", db, str(path))
                        assert json.loads(done.stdout)["services"]["unchanged"] == counts["services"]
                        again.append(elapsed)
                    took = statistics.median(imports)
                    number += 1
                    db = cluster.create_database() if backend == "postgresql" else str(Path(folder) / f"{number}.db")
                    run("init", "--db", db)
                    check, write = in_process(db, read_catalogue(data, path.name))
                    print(
                        f"  {backend}: import {took:.2f} s (runs {', '.join(f'{t:.2f}' for t in imports)};"
                        f" {took - startup:.2f} s beyond start-up), re-import unchanged"
                        f" {statistics.median(again):.2f} s; target < 30 s: {'met' if took < 30 else 'NOT met'};"
                        f" in process: check {check * 1000:.0f} ms, import {write * 1000:.0f} ms"
                    )
        finally:
            if cluster is not None:
                cluster.stop()


if __name__ == "__main__":
    main()
