"""The ``podline`` command line: ``podline ...`` or ``python -m podline ...`` (docs/cli.md).

It is built on click, which the ``podline[cli]`` extra brings. ``main`` is the console
script's entry point; without click it prints how to install it and exits with status 2.

* ``podline run FILE.py[:NAME]`` runs the pipelines a file defines (``podline.cli.loading``
  says how they are found; ``podline.cli.run`` runs them);
* ``podline pipelines``, ``status``, ``logs``, ``runs`` read what runs stored, from the store
  alone (``podline.cli.observe``);
* ``podline show``, ``graph``, ``plan`` open the pipeline from its stored specification
  (``podline.cli.stored``);

exit codes and error reporting live in ``podline.cli.app``.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run the command line on ``sys.argv`` and exit with its status."""
    try:
        import click  # noqa: F401 - only to learn whether it is there
    except ImportError:
        print(
            'podline: the command line needs click; install it with: pip install "podline[cli]"',
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    from podline.cli.app import run_cli

    run_cli()
