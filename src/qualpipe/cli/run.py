"""``qualpipe run``, ``validate`` and ``status``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from qualpipe.plugins import Manager
from qualpipe.runner import RUN, RunOptions, prepare, run

_set = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="STAGE_ID.PARAM=VALUE",
    help="Override a stage parameter (or params.NAME); VALUE is parsed as YAML. Repeatable.",
)
_workdir = click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run store folder (default: .qualpipe/<pipeline name> beside the pipeline file).",
)
_pipeline = click.argument("pipeline", type=click.Path(path_type=Path, dir_okay=False))


@click.command("run")
@_pipeline
@_set
@_workdir
@click.option("--force", is_flag=True, help="Run every stage even if unchanged.")
@click.option("--from", "from_stage", metavar="ID", help="Run this stage and all after it.")
@click.option("--until", metavar="ID", help="Stop after this stage.")
@click.option("--only", metavar="ID", help="Run only this stage (its inputs must exist).")
@click.option("--executor", metavar="NAME", help="Executor: local (default), ray, or a plugin's.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Worker processes for batch stages (ray: CPUs of the local Ray it starts).",
)
@click.option(
    "--address",
    help="Cluster address for distributed executors (ray: auto, or ray://HOST:PORT).",
)
@click.option("--strict", is_flag=True, help="Exit non-zero if any input was quarantined.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bars (default: on a terminal)."
)
@click.pass_obj
def run_cmd(
    manager: Manager,
    pipeline: Path,
    overrides: tuple[str, ...],
    workdir: Path | None,
    force: bool,
    from_stage: str | None,
    until: str | None,
    only: str | None,
    executor: str | None,
    workers: int | None,
    address: str | None,
    strict: bool,
    progress: bool | None,
) -> None:
    """Run PIPELINE, skipping stages whose inputs and settings are unchanged."""
    options = RunOptions(
        workdir=workdir,
        force=force,
        from_stage=from_stage,
        until=until,
        only=only,
        executor=executor,
        workers=workers,
        executor_options={"address": address} if address else {},
        strict=strict,
        progress=progress,
    )
    summary = run(pipeline, overrides, options, manager)
    for r in summary.results:
        rows = ", ".join(f"{k}={v}" for k, v in r.rows().items())
        tail = f" [{rows}] {r.seconds:.1f}s" if r.action == RUN else ""
        click.echo(f"  {r.stage_id:<16} {r.action:<12} {r.reason}{tail}")
    msg = f"{len(summary.ran)} ran, {len(summary.skipped)} unchanged"
    if summary.quarantined:
        msg += f", {summary.quarantined} file(s) quarantined"
    click.echo(f"{summary.pipeline}: {msg} in {summary.seconds:.1f}s; outputs in {summary.workdir}")


@click.command("validate")
@_pipeline
@_set
@click.pass_obj
def validate_cmd(manager: Manager, pipeline: Path, overrides: tuple[str, ...]) -> None:
    """Check PIPELINE (stage types, parameters, inputs) without running anything."""
    ctx = prepare(pipeline, overrides, manager=manager)
    n = len(ctx.stages)
    click.echo(
        f"{pipeline}: valid ({n} stage{'' if n == 1 else 's'}: "
        f"{', '.join(s.id for s in ctx.stages)})"
    )


@click.command("status")
@_pipeline
@_set
@_workdir
@click.option("--force", is_flag=True)
@click.option("--from", "from_stage", metavar="ID")
@click.option("--until", metavar="ID")
@click.option("--only", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_cmd(
    manager: Manager,
    pipeline: Path,
    overrides: tuple[str, ...],
    workdir: Path | None,
    force: bool,
    from_stage: str | None,
    until: str | None,
    only: str | None,
    as_json: bool,
) -> None:
    """Say, per stage, whether `run` would run it and why."""
    options = RunOptions(
        workdir=workdir, force=force, from_stage=from_stage, until=until, only=only
    )
    ctx = prepare(pipeline, overrides, options, manager)
    plan = ctx.plan()
    if as_json:
        click.echo(
            json.dumps(
                [{"stage": d.stage_id, "action": d.action, "reason": d.reason} for d in plan],
                indent=2,
            )
        )
        return
    click.echo(f"{ctx.pipeline.name} (workdir {ctx.workdir})")
    for d in plan:
        mark = {"run": "will run", "skip": "up to date"}.get(d.action, d.action)
        click.echo(f"  {d.stage_id:<16} {mark:<13} {d.reason}")
