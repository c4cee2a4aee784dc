"""The ``qualpipe`` command line.

The click group is built inside :func:`build_cli`, after plugins are loaded, so plugins
add commands through ``qualpipe_register_commands`` and tests never reload modules.
User errors print one line (``qualpipe: error: ...``) and exit with the code of the
error type (docs/cli.md); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from qualpipe import __version__
from qualpipe.errors import EXIT_INTERRUPTED, EXIT_STAGE_FAILED, QualpipeError
from qualpipe.logs import configure
from qualpipe.plugins import Manager, create_manager


def build_cli(manager: Manager) -> click.Group:
    """Build the command group with core commands and every plugin's commands."""
    from qualpipe.cli import decisions, info, inspect, run, scaffold
    from qualpipe.review.command import review_cmd

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="qualpipe")
    @click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
    @click.option("--log-json", is_flag=True, help="Write logs as JSON lines (batch jobs).")
    @click.option(
        "--log-level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        default="info",
        show_default=True,
    )
    @click.pass_context
    def cli(ctx: click.Context, debug: bool, log_json: bool, log_level: str) -> None:
        """Reproducible pipelines for qualitative analysis of interview data."""
        configure(json=log_json, level=log_level)
        ctx.obj = manager
        for failed in manager.failures:
            click.echo(
                f"qualpipe: warning: plugin {failed.name!r} not loaded: {failed.error}", err=True
            )

    for command in (
        run.run_cmd,
        run.validate_cmd,
        run.status_cmd,
        info.plugins_cmd,
        info.stages_cmd,
        info.schema_cmd,
        inspect.inspect_cmd,
        scaffold.plugin_cmd,
        review_cmd,
        decisions.decisions_cmd,
    ):
        cli.add_command(command)
    manager.add_commands(cli)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qualpipe`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("QUALPIPE_DEBUG") == "1"
    try:
        cli = build_cli(create_manager())
        result = cli.main(args=args, prog_name="qualpipe", standalone_mode=False)
        # Outside standalone mode click returns the code of ctx.exit(CODE) (e.g. from a
        # plugin's command) instead of raising Exit; core commands return None.
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("qualpipe: interrupted; completed stages are kept, re-run to resume", err=True)
        return EXIT_INTERRUPTED
    except QualpipeError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"qualpipe: error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"qualpipe: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for the traceback and report it)",
            err=True,
        )
        return EXIT_STAGE_FAILED


def entry() -> None:
    sys.exit(main())
