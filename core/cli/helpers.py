"""What a plugin that adds commands (hook ``add_commands``) may use of the command line, besides
the helpers :mod:`bestiary.extend` exports from the other CLI modules: bestiary's command names,
and running one bestiary command in this process."""

from __future__ import annotations

from collections.abc import Sequence

import click


def command_names() -> list[str]:
    """The names of every ``bestiary`` command: bestiary's own and those plugins add, sorted."""
    from . import main

    return main.list_commands(click.Context(main))


def run_cli(argv: Sequence[str]) -> int:
    """Run ``bestiary ARGV`` in this process, as the ``bestiary`` program would; its exit status.

    Errors print their one-line message on stderr, as on the command line (exit status 2 for
    usage errors and bad names, 1 for other failures).

    :param argv: the arguments after ``bestiary`` (``["bench", "run", "quality"]``).
    """
    from . import main

    try:
        main.main(args=list(argv), prog_name="bestiary", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
