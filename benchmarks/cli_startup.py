"""Start-up cost of the command line: `twitchminert replay` of a 1000-byte log, where start-up is all the work.

Runs `python -m exporter replay TINY` (TINY: the first 1000 bytes of a real TDM log from tests/fixtures)
`--runs` times and prints the best and median wall and CPU time, and how many modules it imported.
With `--against DIR` (another checkout, e.g. a `git archive main | tar -x -C DIR`), that tree runs in
turn with this one, same interpreter, so the two are compared in the same conditions; on a shared
machine the best run is the one least disturbed by others.

Python caches our modules' bytecode unless PYTHONDONTWRITEBYTECODE is set; the figures differ with
it, so the line printed first says which.

    .venv/bin/python benchmarks/cli_startup.py [--runs 20] [--against DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "tests" / "fixtures" / "tdm" / "runs" / "E_restore_cookie_vvv" / "log.txt"


def run_once(tree: Path, args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one `python -m exporter ARGS` with `tree` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd: not a checkout, so `-m exporter` finds the tree on PYTHONPATH, not the current folder's.
    subprocess.run([sys.executable, "-m", "exporter", *args], env=env, cwd=tempfile.gettempdir(),
                   stdout=subprocess.DEVNULL, check=True, timeout=60)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def module_count(tree: Path, args: list[str]) -> int:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "exporter", *args], cwd=tempfile.gettempdir(),
                            env={**os.environ, "PYTHONPATH": str(tree)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, check=True, timeout=60)
    return result.stderr.count("import time:") - 1  # less the header line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--against", type=Path, help="another checkout to time in turn with this one")
    options = parser.parse_args()
    trees = [REPO] + ([options.against.resolve()] if options.against else [])
    with tempfile.TemporaryDirectory() as folder:
        tiny = Path(folder) / "tiny.log"
        tiny.write_bytes(LOG.read_bytes()[:1000])
        args = ["replay", str(tiny), "--timezone", "UTC"]
        print(f"twitchminert replay <1000-byte log>, {options.runs} runs each;"
              f" bytecode cache {'off' if os.environ.get('PYTHONDONTWRITEBYTECODE') else 'on'}")
        times: dict[Path, list[tuple[float, float]]] = {tree: [] for tree in trees}
        for tree in trees:
            run_once(tree, args)  # warm the file cache (and the bytecode cache, when on)
        for _ in range(options.runs):
            for tree in trees:
                times[tree].append(run_once(tree, args))
        for tree in trees:
            wall = [w for w, _ in times[tree]]
            cpu = [c for _, c in times[tree]]
            print(f"{tree}: wall best {min(wall) * 1000:.0f} ms, median {statistics.median(wall) * 1000:.0f} ms;"
                  f" CPU best {min(cpu) * 1000:.0f} ms, median {statistics.median(cpu) * 1000:.0f} ms;"
                  f" {module_count(tree, args)} modules imported")


if __name__ == "__main__":
    main()
