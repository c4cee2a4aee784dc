"""``qualpipe plugins``, ``stages`` and ``schema``."""

from __future__ import annotations

import json
from typing import Any

import click

from qualpipe.errors import EXIT_INVALID, QualpipeError
from qualpipe.pipeline.jsonschema import pipeline_schema
from qualpipe.pipeline.model import suggest
from qualpipe.plugins import Manager


class UnknownStageTypeError(QualpipeError):
    """``qualpipe stages NAME`` for a stage type that is not installed (a usage error)."""

    exit_code = EXIT_INVALID


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def plugins_cmd(manager: Manager, as_json: bool) -> None:
    """List every plugin, its version and what it provides."""
    problem: QualpipeError | None = None
    try:
        manager.registry  # noqa: B018 - fills in what each plugin provides
    except QualpipeError as exc:
        problem = exc
    infos = sorted(manager.plugins.values(), key=lambda p: (p.source != "builtin", p.name))
    if as_json:
        data = {"plugins": [p.as_dict() for p in infos], "error": str(problem) if problem else None}
        click.echo(json.dumps(data, indent=2))
        return
    for p in infos:
        provides = "; ".join(f"{k}: {', '.join(sorted(v))}" for k, v in sorted(p.provides.items()))
        state = f"FAILED: {p.error}" if p.error else provides or "hooks: " + ", ".join(p.hooks)
        click.echo(f"{p.name} {p.version} ({p.source}) {state}")
    if problem:
        raise problem  # keeps its exit code (3 for a plugin error)


@click.command("stages")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def stages_cmd(manager: Manager, names: tuple[str, ...], as_json: bool) -> None:
    """List stage types with their datasets and parameters (all, or NAMES)."""
    reg = manager.registry
    selected = names or tuple(sorted(reg.stage_types))
    out: list[dict[str, Any]] = []
    for name in selected:
        if name not in reg.stage_types:
            installed = sorted(reg.stage_types)
            raise UnknownStageTypeError(
                f"no stage type {name!r}{suggest(name, installed)} "
                f"(installed: {', '.join(installed)})"
            )
        st, info = reg.stage_types[name]
        out.append(
            {
                "name": st.name,
                "plugin": info.name,
                "version": info.version,
                "mode": st.mode,
                "description": st.description,
                "consumes": [
                    {"name": i.name, "kind": i.kind, "optional": i.optional} for i in st.inputs
                ],
                "produces": [{"name": o.name, "kind": o.kind} for o in st.outputs],
                "params": [
                    {
                        "name": p.name,
                        "type": p.type,
                        "required": p.required,
                        "default": None if p.required else p.default,
                        "help": p.help,
                        "choices": list(p.choices) if p.choices else None,
                    }
                    for p in st.params
                ],
            }
        )
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
        return
    for s in out:
        mode = "batch by batch" if s["mode"] == "batch" else "whole dataset"
        click.echo(f"{s['name']}  ({s['plugin']} {s['version']}, {mode})")
        click.echo(f"    {s['description']}")
        cons = ", ".join(i["kind"] for i in s["consumes"]) or "-"
        prod = ", ".join(f"{o['name']}:{o['kind']}" for o in s["produces"]) or "-"
        click.echo(f"    consumes: {cons}    produces: {prod}")
        for p in s["params"]:
            default = "required" if p["required"] else f"default {p['default']!r}"
            click.echo(f"    - {p['name']} ({p['type']}, {default}): {p['help']}")
        click.echo("")


@click.command("schema")
@click.pass_obj
def schema_cmd(manager: Manager) -> None:
    """Print the JSON Schema of pipeline files (for editors)."""
    click.echo(json.dumps(pipeline_schema(manager.registry), indent=2, default=str))
