"""Check a pipeline against the installed stage types, before anything runs.

Resolves every stage to its :class:`~qualpipe.stage.StageType`, checks and coerces its
parameters (paths resolved relative to the pipeline file, or to the current directory
for values given with ``--set``), binds each consumed dataset to the earlier stage (or
external dataset) that provides it, and predicts which datasets are sensitive so that an
export of raw data is refused here rather than half-way through a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualpipe.errors import DatasetError, PipelineError
from qualpipe.pipeline.model import Pipeline, StageSpec, suggest
from qualpipe.plugins import PluginInfo, Registry
from qualpipe.stage import StageType
from qualpipe.store import open_dataset


@dataclass(frozen=True)
class Binding:
    """Where a consumed dataset comes from: an earlier stage's output or a path."""

    input: str
    kind: str
    stage: str | None = None
    output: str | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.stage}.{self.output}" if self.stage else str(self.path)


@dataclass
class ResolvedStage:
    spec: StageSpec
    type: StageType
    plugin: PluginInfo
    params: dict[str, Any]
    bindings: dict[str, Binding] = field(default_factory=dict)
    sensitive: dict[str, bool] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def upstream(self) -> list[str]:
        return sorted({b.stage for b in self.bindings.values() if b.stage})


def _resolve_path(value: str, base: Path) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p))


def _check_params(pipe: Pipeline, spec: StageSpec, stype: StageType) -> dict[str, Any]:
    known = [p.name for p in stype.params]
    resolved: dict[str, Any] = {}
    for key in spec.params:
        if stype.param(key) is None:
            unknown = (
                f"unknown parameter {key!r} for stage type {stype.name!r} "
                f"(known: {', '.join(known) or 'none'}){suggest(key, known)}"
            )
            if key in spec.set_on_cli:
                raise PipelineError(f"--set {spec.id}.{key}: {unknown}")
            raise PipelineError(
                f"stage {spec.id!r}: {unknown}", pipe.key_loc("stages", spec.index, "with", key)
            )
    for param in stype.params:
        where = pipe.loc("stages", spec.index, "with", param.name)
        if param.name not in spec.params:
            if param.required:
                raise PipelineError(
                    f"stage {spec.id!r}: missing required parameter {param.name!r} "
                    f"({param.help or param.type}); add it under with:",
                    pipe.loc("stages", spec.index),
                )
            value = param.default
        else:
            try:
                value = param.check(spec.params[param.name])
            except ValueError as exc:
                if param.name in spec.set_on_cli:
                    raise PipelineError(f"--set {spec.id}.{param.name}: {exc}") from None
                raise PipelineError(
                    f"stage {spec.id!r}: parameter {param.name!r}: {exc}", where
                ) from None
            base = Path.cwd() if param.name in spec.from_cli else pipe.dir
            if param.type in ("path", "output_path") and value is not None:
                value = _resolve_path(value, base)
            elif param.type == "paths" and value is not None:
                value = [_resolve_path(v, base) for v in value]
        resolved[param.name] = value
    return resolved


def _sources(pipe: Pipeline, spec: StageSpec, earlier: dict[str, ResolvedStage]) -> list[str]:
    if spec.inputs is None:
        # Nearest earlier stage first: the previous stage, then the ones before it.
        return [s.id for s in reversed(pipe.stages[: spec.index])]
    return list(spec.inputs.values()) if isinstance(spec.inputs, dict) else list(spec.inputs)


def _is_path(source: str) -> bool:
    return "/" in source or "\\" in source or source.endswith(".parquet") or source.startswith(".")


def _bind(
    pipe: Pipeline, spec: StageSpec, stype: StageType, earlier: dict[str, ResolvedStage]
) -> tuple[dict[str, Binding], dict[str, bool]]:
    where = pipe.loc("stages", spec.index, "inputs")
    # candidate (label, stage, output, path, kind, sensitive) for every source dataset
    candidates: list[tuple[str, Binding, bool]] = []
    for src in _sources(pipe, spec, earlier):
        if _is_path(src):
            path = Path(src).expanduser()
            path = path if path.is_absolute() else pipe.dir / path
            try:
                reader = open_dataset(path)
            except DatasetError as exc:
                raise PipelineError(f"stage {spec.id!r}: input {src!r}: {exc}", where) from None
            kind = reader.kind
            if kind is None:
                raise PipelineError(
                    f"stage {spec.id!r}: input {src!r} is not a qualpipe dataset "
                    "(no kind in its schema); point at a stage output folder",
                    where,
                )
            candidates.append((src, Binding("", kind, path=path), reader.sensitive))
            continue
        stage_id, _, output = src.partition(".")
        if stage_id not in earlier:
            later = stage_id in pipe.ids
            raise PipelineError(
                f"stage {spec.id!r}: input {src!r} "
                + (
                    "comes later in the pipeline; a stage can only read earlier stages"
                    if later
                    else "is not an earlier stage id or a dataset path"
                    + suggest(stage_id, list(earlier))
                ),
                where,
            )
        up = earlier[stage_id]
        for out in up.type.outputs:
            if output and out.name != output:
                continue
            candidates.append(
                (
                    src,
                    Binding("", out.kind, stage=stage_id, output=out.name),
                    up.sensitive[out.name],
                )
            )
        if output and not any(c[0] == src for c in candidates):
            raise PipelineError(
                f"stage {spec.id!r}: stage {stage_id!r} has no output {output!r} "
                f"(outputs: {', '.join(o.name for o in up.type.outputs)})",
                where,
            )

    bindings: dict[str, Binding] = {}
    sensitivity: dict[str, bool] = {}
    explicit = spec.inputs if isinstance(spec.inputs, dict) else None
    for inp in stype.inputs:
        if explicit is not None and inp.name in explicit:
            pool = [c for c in candidates if c[0] == explicit[inp.name] and c[1].kind == inp.kind]
        else:
            pool = [c for c in candidates if c[1].kind == inp.kind]
        if spec.inputs is None and pool:
            # The nearest earlier producer wins; of its outputs of that kind, the one
            # named like the input (theme.themes for "themes", theme.proposals for
            # "proposals"); otherwise two outputs of that stage are ambiguous.
            pool = [c for c in pool if c[1].stage == pool[0][1].stage]
            named = [c for c in pool if c[1].output == inp.name]
            if len(pool) > 1 and named:
                pool = named
        if not pool:
            if inp.optional:
                continue
            raise PipelineError(
                f"stage {spec.id!r} ({stype.name}) consumes a {inp.kind!r} dataset but "
                + (
                    "no earlier stage produces one; add a stage that does"
                    if spec.inputs is None
                    else f"none of its inputs ({', '.join(_sources(pipe, spec, earlier))}) "
                    "produces one; list a stage that does under inputs:"
                ),
                where if spec.inputs is not None else pipe.loc("stages", spec.index, "uses"),
            )
        if len(pool) > 1:
            raise PipelineError(
                f"stage {spec.id!r}: several inputs provide {inp.kind!r} "
                f"({', '.join(c[1].label if c[1].stage else c[0] for c in pool)}); "
                f"choose one with inputs: {{{inp.name}: STAGE.OUTPUT}}",
                where,
            )
        _, b, sens = pool[0]
        bindings[inp.name] = Binding(inp.name, inp.kind, b.stage, b.output, b.path)
        sensitivity[inp.name] = sens
    return bindings, sensitivity


def resolve(pipe: Pipeline, registry: Registry) -> list[ResolvedStage]:
    """Resolve and check every stage; raise :class:`PipelineError` on the first problem."""
    resolved: dict[str, ResolvedStage] = {}
    for spec in pipe.stages:
        entry = registry.stage_types.get(spec.uses)
        if entry is None:
            names = sorted(registry.stage_types)
            raise PipelineError(
                f"stage {spec.id!r}: unknown stage type {spec.uses!r}{suggest(spec.uses, names)} "
                f"(installed: {', '.join(names)}; is the plugin that provides it installed? "
                "see 'qualpipe plugins')",
                pipe.loc("stages", spec.index, "uses"),
            )
        stype, info = entry
        params = _check_params(pipe, spec, stype)
        bindings, in_sens = _bind(pipe, spec, stype, resolved)
        any_sensitive = any(in_sens.values())
        if stype.export and any_sensitive and not params.get("allow_sensitive"):
            raw = ", ".join(b.label for n, b in bindings.items() if in_sens[n])
            raise PipelineError(
                f"stage {spec.id!r} would export sensitive (not anonymised) data from {raw}; "
                "anonymise first, or set allow_sensitive: true under with: if you really mean it",
                pipe.loc("stages", spec.index),
            )
        sensitive = {
            out.name: (out.sensitive if out.sensitive is not None else any_sensitive)
            for out in stype.outputs
        }
        resolved[spec.id] = ResolvedStage(spec, stype, info, params, bindings, sensitive)
    return list(resolved.values())
