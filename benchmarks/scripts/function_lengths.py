"""The longest functions of the project, by lines from ``def`` to the last line of the body.

    python benchmarks/scripts/function_lengths.py            # the ten longest
    python benchmarks/scripts/function_lengths.py --top 20 --under core/engine

Method: every ``*.py`` under core/, registry/, plugins/ and benchmarks/ parsed with ``ast``; a
function's length is ``end_lineno - lineno + 1`` (docstring and comments included, nested functions
counted in their own right and inside their parent).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("core", "registry", "plugins", "benchmarks")


def lengths(folders: tuple[str, ...] = FOLDERS) -> list[tuple[int, str]]:
    """``(lines, "path:line name")`` of every function, longest first."""
    rows = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                    where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
                    rows.append((node.end_lineno - node.lineno + 1, where))
    return sorted(rows, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many to show (default 10)")
    parser.add_argument("--under", action="append", help="folders to scan (repeatable; default: the four sources)")
    args = parser.parse_args()
    print(__doc__.split("Method:")[1].strip().replace("\n", " "))
    for n, where in lengths(tuple(args.under or FOLDERS))[: args.top]:
        print(f"{n:5d}  {where}")


if __name__ == "__main__":
    main()
