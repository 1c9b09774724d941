"""Imports a dependency that is not installed, so loading the plugin fails."""

from __future__ import annotations

import bestiary_broken_missing_dependency  # noqa: F401  (deliberately absent)

from bestiary import hookimpl


@hookimpl
def register_architectures(register):
    register("never_registered", "bestiary_broken.plugin:build")
