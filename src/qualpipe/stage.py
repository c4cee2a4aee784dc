"""The stage API: what a stage type declares and what its code receives.

A plugin registers :class:`StageType` objects. Two shapes of stage exist:

``mode="batch"``
    ``process_batch(batch, ctx)`` is called once per record batch of the *first*
    consumed dataset (the streamed input); any further consumed datasets are read whole
    and handed over as ``ctx.side[name]`` (e.g. a codebook beside streamed segments).
    It returns ``{output_name: table_or_batch}``. The runner streams these stages in
    bounded memory and may run batches in several processes or on a cluster, so the
    function must be a module-level callable and must not keep state between batches
    other than what ``setup`` builds (models, compiled patterns).

``mode="whole"``
    ``run(ctx)`` is called once with readers for every input
    (``ctx.inputs[name].iter_batches()`` or ``.read_all()``) and writes its outputs with
    ``ctx.write(name, table_or_batch)`` as often as it likes. Use it when a stage needs
    the whole dataset (theme construction, export, corpus-wide consistency).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from qualpipe.decisions import Decision
    from qualpipe.store import DatasetReader

ParamType = Literal[
    "str", "int", "float", "bool", "list", "dict", "any", "path", "paths", "output_path"
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Marker default for parameters a pipeline must set.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Param:
    """A stage parameter, shown by ``qualpipe stages`` and checked by ``validate``.

    Types: ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``any``, and three
    path types resolved relative to the pipeline file: ``path`` (an input file or
    folder, fingerprinted by content, so editing it re-runs the stage), ``paths`` (one
    or several files, folders or globs, also fingerprinted by content) and
    ``output_path`` (somewhere the stage writes, not fingerprinted).
    """

    name: str
    type: ParamType = "str"
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[Any, ...] | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise ``ValueError``."""
        if value is None and not self.required and self.default is None:
            return None
        t = self.type
        if t in ("str", "path", "output_path"):
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(f"expected a {t.replace('_', ' ')}, got {value!r}")
            value = str(value)
        elif t == "paths":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"expected a path or a list of paths, got {value!r}")
        elif t == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an integer, got {value!r}")
        elif t == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"expected a number, got {value!r}")
            value = float(value)
        elif t == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
        elif t == "list":
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, list):
                raise ValueError(f"expected a list, got {value!r}")
        elif t == "dict" and not isinstance(value, dict):
            raise ValueError(f"expected a mapping, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"expected one of {', '.join(map(str, self.choices))}; got {value!r}")
        return value


@dataclass(frozen=True)
class Input:
    """A dataset a stage consumes: a local ``name`` and the dataset ``kind`` it must be."""

    name: str
    kind: str
    optional: bool = False


@dataclass(frozen=True)
class Output:
    """A dataset a stage produces.

    ``sensitive``: ``True`` marks the output as raw personal data (ingest), ``False``
    as safe (anonymise), ``None`` inherits: sensitive if any input was.
    """

    name: str
    kind: str
    sensitive: bool | None = None


def _as_inputs(items: Sequence[Input | str]) -> tuple[Input, ...]:
    return tuple(i if isinstance(i, Input) else Input(i, i) for i in items)


def _as_outputs(items: Sequence[Output | str]) -> tuple[Output, ...]:
    return tuple(o if isinstance(o, Output) else Output(o, o) for o in items)


@dataclass(frozen=True)
class StageType:
    """A kind of stage a pipeline file can ``use``.

    ``consumes``/``produces`` accept dataset kind names (``"documents"``) or
    :class:`Input`/:class:`Output` objects. ``components`` names the component
    families the stage uses (``("reader",)``): the runner hands it every registered
    component of those families as ``ctx.components[family][name]``, and their plugin
    versions are part of the stage fingerprint. ``export=True`` makes the runner refuse
    sensitive inputs unless the pipeline sets ``allow_sensitive: true`` for the stage
    (the parameter is added automatically). ``version`` overrides the plugin version in
    the stage fingerprint: bump it when the stage's output changes. ``decisions`` names
    the targets of researchers' decisions the stage reads (``("coding",)``, see
    :mod:`qualpipe.decisions`): the runner hands it the effective ones as
    ``ctx.decisions`` and adds their fingerprint to the stage's. ``batch_size`` is the
    number of rows per batch a batch-mode stage works best with when the pipeline file
    gives none (default 256): larger batches spread per-batch costs (setup, one output
    part file per batch) for stages with small rows.
    """

    name: str
    description: str
    mode: Literal["batch", "whole"]
    consumes: Sequence[Input | str] = ()
    produces: Sequence[Output | str] = ()
    params: Sequence[Param] = ()
    process_batch: Callable[[pa.RecordBatch, BatchContext], Mapping[str, Any]] | None = None
    setup: Callable[[Mapping[str, Any]], Any] | None = None
    run: Callable[[StageContext], None] | None = None
    export: bool = False
    version: str | None = None
    family: str | None = None
    components: Sequence[str] = ()
    decisions: Sequence[str] = ()
    batch_size: int | None = None

    def __post_init__(self) -> None:
        from qualpipe.decisions import TARGETS

        object.__setattr__(self, "decisions", tuple(self.decisions))
        for target in self.decisions:
            if target not in TARGETS:
                raise ValueError(
                    f"stage type {self.name!r} reads decisions about {target!r}; "
                    f"targets are {', '.join(TARGETS)}"
                )
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ValueError(
                f"stage type {self.name!r}: batch_size must be a positive integer, "
                f"got {self.batch_size!r}"
            )
        object.__setattr__(self, "consumes", _as_inputs(self.consumes))
        object.__setattr__(self, "produces", _as_outputs(self.produces))
        params = tuple(self.params)
        if self.export and all(p.name != "allow_sensitive" for p in params):
            params += (
                Param(
                    "allow_sensitive",
                    "bool",
                    False,
                    "export datasets still marked sensitive (not anonymised)",
                ),
            )
        object.__setattr__(self, "params", params)
        if self.mode == "batch" and self.process_batch is None:
            raise ValueError(f"batch stage type {self.name!r} needs process_batch")
        if self.mode == "batch" and not self.inputs:
            raise ValueError(f"batch stage type {self.name!r} must consume a dataset")
        if self.mode == "whole" and self.run is None:
            raise ValueError(f"whole stage type {self.name!r} needs run")

    @property
    def inputs(self) -> tuple[Input, ...]:
        return self.consumes  # type: ignore[return-value]

    @property
    def outputs(self) -> tuple[Output, ...]:
        return self.produces  # type: ignore[return-value]

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass
class BatchContext:
    """What ``process_batch`` receives besides the batch (picklable)."""

    stage_id: str
    params: Mapping[str, Any]
    side: Mapping[str, pa.Table] = field(default_factory=dict)
    state: Any = None
    batch_index: int = 0
    components: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the effective decisions of the targets the stage type reads (``StageType.decisions``)
    decisions: Sequence[Decision] = ()


class StageContext:
    """What a whole-dataset stage's ``run(ctx)`` receives."""

    def __init__(
        self,
        stage_id: str,
        params: Mapping[str, Any],
        inputs: Mapping[str, DatasetReader],
        writer: Callable[[str, Any], None],
        pipeline_dir: Path,
        stats: dict[str, Any],
        progress: Callable[[int], None] | None = None,
        components: Mapping[str, Mapping[str, Any]] | None = None,
        pipeline_name: str = "",
        workdir: Path | None = None,
        artifacts_dir: Path | None = None,
        decisions: Sequence[Decision] = (),
        workers: int = 1,
    ) -> None:
        self.stage_id = stage_id
        #: processes the stage may use (the local executor's ``--workers``)
        self.workers = workers
        #: the effective decisions of the targets the stage type reads
        self.decisions: list[Decision] = list(decisions)
        self.components = components or {}
        self.pipeline_name = pipeline_name
        self.workdir = workdir
        self._artifacts_dir = artifacts_dir
        self.params = params
        self.inputs = inputs
        self.pipeline_dir = pipeline_dir
        self.stats = stats
        self._writer = writer
        self._progress = progress

    def write(self, name: str, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows to output ``name``; checked against its dataset kind."""
        self._writer(name, data)

    def artifact(self, name: str) -> Path:
        """A path for a file committed with the stage's outputs (a report, a review page).

        It is written into the staging folder and appears in the stage folder only when
        the stage completes; the manifest lists it with its size and sha256.
        """
        if self._artifacts_dir is None or "/" in name or name.startswith("."):
            raise ValueError(f"invalid artifact name {name!r}")
        return self._artifacts_dir / name

    def note(self, key: str, value: Any) -> None:
        """Record a JSON-serialisable statistic in the stage manifest (counts, not text)."""
        self.stats[key] = value

    def advance(self, n: int = 1) -> None:
        """Report progress (``n`` more units of work done)."""
        if self._progress:
            self._progress(n)

    def batches(self, name: str, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the record batches of input ``name``."""
        return self.inputs[name].iter_batches(batch_size)
