"""Run every podline benchmark and print its figures: ``python benchmarks/run.py [--quick]``.

Every ``bench_*.py`` module here defines ``run(quick: bool)``. Each benchmark measures a
same-run baseline and reports the ratio against it. ``--quick`` shrinks the sizes for a smoke
run (CI); its figures are not meaningful.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = sorted(p.stem for p in HERE.glob("bench_*.py"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(name)
        print(f"== {name}")
        module.run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
