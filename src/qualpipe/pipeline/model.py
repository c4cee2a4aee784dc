"""Pipeline file v1: structure, ``--set`` overrides and ``${...}`` interpolation.

This module checks the *shape* of a pipeline file. Whether stage types exist and their
parameters and inputs fit is checked against the plugin registry in
:mod:`qualpipe.pipeline.validate`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qualpipe.errors import Location, PipelineError
from qualpipe.pipeline.yamlload import Locations, load_yaml, parse_scalar

if TYPE_CHECKING:
    from qualpipe.decisions import DecisionStore

FORMAT_VERSION = 1
TOP_KEYS = (
    "qualpipe",
    "name",
    "description",
    "params",
    "stages",
    "executor",
    "workdir",
    "decisions",
)
STAGE_KEYS = ("id", "uses", "with", "inputs", "description", "batch_size")
ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
INTERP_RE = re.compile(r"\$\{([^}]*)\}")


def suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass
class StageSpec:
    """One entry of ``stages:`` as written (after overrides and interpolation)."""

    id: str
    uses: str
    params: dict[str, Any]
    inputs: list[str] | dict[str, str] | None
    index: int
    description: str = ""
    batch_size: int | None = None
    #: parameter names whose value came from the command line (paths resolve from cwd)
    from_cli: set[str] = field(default_factory=set)
    #: parameter names given directly as ``--set STAGE_ID.PARAM=VALUE`` (errors name it)
    set_on_cli: set[str] = field(default_factory=set)


@dataclass
class Pipeline:
    path: Path
    name: str
    description: str
    params: dict[str, Any]
    stages: list[StageSpec]
    locations: Locations
    executor: dict[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    #: the decisions file (``decisions:``), relative to the file; default decisions/<name>.jsonl
    decisions: str | None = None

    @property
    def dir(self) -> Path:
        return self.path.parent

    def decision_store(self) -> DecisionStore:
        """The researchers' decisions about this pipeline's suggestions (docs/review.md)."""
        from qualpipe.decisions import DecisionStore

        override = Path(self.decisions) if self.decisions else None
        return DecisionStore.for_pipeline(self.path, self.name, override)

    def stage(self, stage_id: str) -> StageSpec:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise PipelineError(
            f"no stage {stage_id!r} in {self.path.name} (stages: "
            f"{', '.join(s.id for s in self.stages)}){suggest(stage_id, self.ids)}"
        )

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.stages]

    def loc(self, *key: str | int) -> Any:
        return self.locations.get(*key)

    def key_loc(self, *key: str | int) -> Location:
        """Where the mapping key itself is written (for unknown-key errors)."""
        return self.locations.key(*key)


def _err(msg: str, locs: Locations, *key: str | int) -> PipelineError:
    return PipelineError(msg, locs.get(*key))


def parse_overrides(items: Sequence[str]) -> list[tuple[list[str], Any]]:
    """Parse ``STAGE_ID.PARAM=VALUE`` / ``params.NAME=VALUE`` strings."""
    parsed = []
    for item in items:
        target, sep, raw = item.partition("=")
        keys = target.strip().split(".")
        if not sep or len(keys) < 2 or not all(keys):
            raise PipelineError(
                f"--set {item!r}: expected STAGE_ID.PARAM=VALUE or params.NAME=VALUE "
                "(e.g. --set ingest.paths=data/transcripts)"
            )
        parsed.append((keys, parse_scalar(raw)))
    return parsed


def _set_nested(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        nxt = target.get(k)
        if not isinstance(nxt, dict):
            nxt = {}
            target[k] = nxt
        target = nxt
    target[keys[-1]] = value


def _interpolate(
    value: Any, params: dict[str, Any], locs: Locations, key: tuple[str | int, ...]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, params, locs, (*key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, params, locs, (*key, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def lookup(expr: str) -> Any:
        scope, _, name = expr.strip().partition(".")
        if scope == "params" and name in params:
            return params[name]
        if scope == "env" and name:
            if name not in os.environ:
                raise _err(
                    f"environment variable {name!r} is not set (used as ${{{expr}}})", locs, *key
                )
            return os.environ[name]
        if scope == "params":
            raise _err(
                f"unknown parameter ${{{expr}}}: define {name!r} under top-level params:"
                f"{suggest(name, list(params))}",
                locs,
                *key,
            )
        raise _err(
            f"cannot interpolate ${{{expr}}}: use ${{params.NAME}} or ${{env.NAME}}", locs, *key
        )

    whole = INTERP_RE.fullmatch(value)
    if whole:
        return lookup(whole.group(1))
    return INTERP_RE.sub(lambda m: str(lookup(m.group(1))), value)


def load_pipeline(path: Path | str, overrides: Sequence[str] = ()) -> Pipeline:
    """Read a pipeline file, apply ``--set`` overrides and interpolate ``${...}``."""
    path = Path(path)
    data, locs = load_yaml(path)
    if not isinstance(data, dict):
        raise _err("a pipeline file is a mapping with qualpipe:, name: and stages:", locs)
    for key in data:
        if key not in TOP_KEYS:
            raise PipelineError(
                f"unknown top-level key {key!r} (allowed: {', '.join(TOP_KEYS)})"
                f"{suggest(key, TOP_KEYS)}",
                locs.key(key),
            )
    version = data.get("qualpipe")
    if version is None:
        raise _err("missing 'qualpipe: 1' (the pipeline file format version)", locs)
    if version != FORMAT_VERSION:
        raise _err(
            f"unsupported pipeline format qualpipe: {version!r}; this qualpipe reads version "
            f"{FORMAT_VERSION}",
            locs,
            "qualpipe",
        )
    name = data.get("name")
    if not isinstance(name, str) or not ID_RE.fullmatch(name):
        raise _err(
            f"name: must be a simple name (letters, digits, - and _), got {name!r}", locs, "name"
        )
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise _err("params: must be a mapping of names to values", locs, "params")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise _err("stages: must be a non-empty list of stages", locs, "stages")
    executor = data.get("executor") or {}
    if isinstance(executor, str):
        executor = {"name": executor}
    if not isinstance(executor, dict):
        raise _err("executor: must be a name or a mapping with name:", locs, "executor")

    overridden_params: set[str] = set()
    stage_overrides: list[tuple[list[str], Any]] = []
    for keys, value in parse_overrides(overrides):
        if keys[0] == "params":
            _set_nested(params, keys[1:], value)
            overridden_params.add(keys[1])
        else:
            stage_overrides.append((keys, value))

    stages: list[StageSpec] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_stages):
        if not isinstance(raw, dict):
            raise _err("each stage is a mapping with id: and uses:", locs, "stages", i)
        for key in raw:
            if key not in STAGE_KEYS:
                raise PipelineError(
                    f"unknown stage key {key!r} (allowed: {', '.join(STAGE_KEYS)})"
                    f"{suggest(key, STAGE_KEYS)}",
                    locs.key("stages", i, key),
                )
        sid = raw.get("id")
        if not isinstance(sid, str) or not ID_RE.fullmatch(sid):
            raise _err(
                f"stage id must be a simple name (letters, digits, - and _), got {sid!r}",
                locs,
                "stages",
                i,
                "id" if "id" in raw else "",
            )
        if sid in seen:
            raise _err(
                f"duplicate stage id {sid!r}; stage ids must be unique", locs, "stages", i, "id"
            )
        seen[sid] = i
        uses = raw.get("uses")
        if not isinstance(uses, str) or not uses:
            raise _err(
                f"stage {sid!r} needs uses: STAGE_TYPE (see 'qualpipe stages')", locs, "stages", i
            )
        with_ = raw.get("with") or {}
        if not isinstance(with_, dict):
            raise _err(
                f"stage {sid!r}: with: must be a mapping of parameters", locs, "stages", i, "with"
            )
        inputs = raw.get("inputs")
        if inputs is not None:
            if isinstance(inputs, str):
                inputs = [inputs]
            ok = (isinstance(inputs, list) and all(isinstance(x, str) for x in inputs)) or (
                isinstance(inputs, dict) and all(isinstance(v, str) for v in inputs.values())
            )
            if not ok:
                raise _err(
                    f"stage {sid!r}: inputs: must be a stage id, a list of stage ids or dataset "
                    "paths, or a mapping of input name to stage id",
                    locs,
                    "stages",
                    i,
                    "inputs",
                )
        batch_size = raw.get("batch_size")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise _err(
                f"stage {sid!r}: batch_size must be a positive integer",
                locs,
                "stages",
                i,
                "batch_size",
            )
        key = ("stages", i, "with")
        from_cli = {
            k
            for k, v in with_.items()
            if isinstance(v, str)
            and (m := INTERP_RE.fullmatch(v))
            and m.group(1).strip().removeprefix("params.") in overridden_params
        }
        stages.append(
            StageSpec(
                id=sid,
                uses=uses,
                params=_interpolate(with_, params, locs, key),
                inputs=inputs,
                index=i,
                description=str(raw.get("description") or ""),
                batch_size=batch_size,
                from_cli=from_cli,
            )
        )

    by_id = {s.id: s for s in stages}
    for keys, value in stage_overrides:
        sid = keys[0]
        if sid not in by_id:
            raise PipelineError(
                f"--set {'.'.join(keys)}: no stage {sid!r} in {path.name} "
                f"(stages: {', '.join(by_id)}){suggest(sid, list(by_id))}"
            )
        _set_nested(by_id[sid].params, keys[1:], value)
        by_id[sid].from_cli.add(keys[1])
        by_id[sid].set_on_cli.add(keys[1])

    workdir = data.get("workdir")
    if workdir is not None and not isinstance(workdir, str):
        raise _err("workdir: must be a path", locs, "workdir")
    decisions = data.get("decisions")
    if decisions is not None and (not isinstance(decisions, str) or not decisions.strip()):
        raise _err(
            "decisions: must be the path of the decisions file (JSON Lines)", locs, "decisions"
        )
    return Pipeline(
        path=path.resolve(),
        name=name,
        description=str(data.get("description") or ""),
        params=params,
        stages=stages,
        locations=locs,
        executor=dict(executor),
        workdir=workdir,
        decisions=decisions,
    )
