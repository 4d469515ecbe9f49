"""The root ``podline`` command: its sub-commands, its exit codes and how errors are shown.

Every failure ends in one line on stderr, ``podline: <message>``, and one of the documented
exit codes (``ExitCode``); an error raised by the user's own code while a pipeline file is
imported also shows that code's traceback, since the user has to fix it there.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from enum import IntEnum

import click

from podline.errors import FunctionCallError, NotFoundError, PodlineError, StoreError
from podline.version import __version__

__all__ = ["ExitCode", "cli", "run_cli"]


class ExitCode(IntEnum):
    """What a ``podline`` command's exit status means (docs/cli.md, "Exit codes")."""

    OK = 0
    #: The run finished with failed packets (or ``--error-policy fail_fast`` stopped it).
    FAILED = 1
    #: The command line was wrong: an unknown option, a missing argument, a file that
    #: defines no pipeline, several pipelines in a store and no ``--pipeline``.
    USAGE = 2
    #: The store holds nothing, or no pipeline or node of the name given.
    NOT_FOUND = 3
    #: Anything else went wrong: the pipeline file raised, a store could not be read, ...
    ERROR = 4
    #: Interrupted (Ctrl-C); what finished before was committed.
    INTERRUPTED = 130


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run 'podline COMMAND --help' for a command's options and examples.",
)
@click.version_option(__version__, "-V", "--version", prog_name="podline")
def cli() -> None:
    """podline: reproducible, content-addressed data pipelines.

    Run the pipelines a Python file defines, then read what they stored (status, logs, runs,
    results, graph, plan) from the store alone, without the pipeline's code.

    \b
    Examples:
      podline run pipeline.py                 # every pipeline the file defines
      podline run pipeline.py:analysis -e processes -w 4
      podline status --state FAILED
      podline logs --node speed --json | jq '.[].stderr'
      podline show speed --limit 5
      podline graph --output pipeline.svg

    The store is --store, else $PODLINE_STORE, else ./.podline (as podline.default_store()).
    """


def _register() -> None:
    from podline.cli import lineage, observe, run, stored, verify

    cli.add_command(run.run)
    for command in (*observe.COMMANDS, *stored.COMMANDS, *lineage.COMMANDS, *verify.COMMANDS):
        cli.add_command(command)


_register()


def run_cli(args: Sequence[str] | None = None) -> None:
    """Run ``podline`` on ``args`` (default ``sys.argv[1:]``) and exit with its status."""
    sys.exit(_status(args))


def _status(args: Sequence[str] | None) -> int:
    try:
        returned = cli.main(args, prog_name="podline", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # click's usage errors: status 2
        # One line, as every podline error (click would add its usage block).
        command = exc.ctx.command_path if isinstance(exc, click.UsageError) and exc.ctx else ""
        hint = f"; see {command} --help" if command else ""
        click.echo(f"podline: {exc.format_message().rstrip('.')}{hint}", err=True)
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("podline: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except FunctionCallError as exc:  # fail_fast: the first failed packet stopped the run
        return _error(exc, ExitCode.FAILED)
    except NotFoundError as exc:
        return _error(exc, ExitCode.NOT_FOUND)
    except PodlineError as exc:
        return _error(exc, ExitCode.ERROR)
    return int(returned or ExitCode.OK)


def _error(exc: PodlineError, code: ExitCode) -> int:
    cause = exc.__cause__
    if (
        isinstance(cause, Exception)
        and not isinstance(cause, PodlineError)
        and not isinstance(exc, StoreError)  # a store's I/O failed: its message says what
    ):
        # The user's code raised: its traceback says where to look.
        click.echo("".join(traceback.format_exception(cause)), err=True, nl=False)
    click.echo(f"podline: {exc}", err=True)
    return code
