"""``qualpipe review PIPELINE``: open the review app for a pipeline's latest run."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from qualpipe.errors import QualpipeError
from qualpipe.plugins import Manager

NEEDS_FLASK = "needs flask: pip install 'qualpipe[review]'"


@click.command("review")
@click.argument("pipeline", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="STAGE_ID.PARAM=VALUE",
    help="Override a stage parameter, as for `qualpipe run` (used by re-runs too).",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run store folder (default: .qualpipe/<pipeline name> beside the pipeline file).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port on 127.0.0.1 (0: a free random port).",
)
@click.option("--no-browser", is_flag=True, help="Print the address; do not open a browser.")
@click.option("--who", metavar="NAME", help="Name recorded with each decision (default: OS user).")
@click.pass_obj
def review_cmd(
    manager: Manager,
    pipeline: Path,
    overrides: tuple[str, ...],
    workdir: Path | None,
    port: int,
    no_browser: bool,
    who: str | None,
) -> None:
    """Review anonymisation findings, codings and themes of PIPELINE's latest run in a
    local web app (127.0.0.1 only); decisions go to the pipeline's decisions file."""
    try:
        import flask  # noqa: F401
    except ImportError:
        raise QualpipeError(NEEDS_FLASK) from None
    from qualpipe.review.app import create_app
    from qualpipe.review.server import make
    from qualpipe.review.session import ReviewSession

    session = ReviewSession(pipeline, overrides, workdir, who, manager)
    try:
        server = make(create_app(session), port)
    except OSError as exc:
        raise QualpipeError(
            f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; try another --port"
        ) from None
    url = f"http://127.0.0.1:{server.port}/"
    click.echo(f"qualpipe review: {session.pipeline.name} at {url} (Ctrl-C to stop)")
    click.echo(f"  decisions: {session.decisions.path}")
    if not no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("qualpipe review: stopped")
    finally:
        server.server_close()
