"""The built-in benchmark suites (plugin ``suites``): every ``*.toml`` file shipped in this package.

Registering reads each small TOML file for its description and measure (no torch); building an
entry parses and validates the whole suite (:func:`bestiary.benchmarks.suite.load_suite`).
"""

from __future__ import annotations

import tomllib
from importlib.resources import files
from typing import Any

from bestiary import hookimpl

PACKAGE = "bestiary.benchmarks.suites"
FACTORY = "bestiary.benchmarks.suite:load_suite"


@hookimpl
def register_benchmarks(register: Any) -> None:
    folder = files(PACKAGE)
    for ref in sorted(folder.iterdir(), key=lambda r: r.name):
        if not ref.name.endswith(".toml"):
            continue
        values = tomllib.loads(ref.read_text(encoding="utf-8"))
        name = ref.name[: -len(".toml")]
        register(name, FACTORY, description=str(values.get("description", "")),
                 tags=(str(values.get("measure", "")),), defaults={"package": PACKAGE, "resource": ref.name},
                 metadata={"measure": values.get("measure"), "repeats": values.get("repeats", 1)})
