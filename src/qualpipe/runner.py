"""The runner: decides which stages run (and why), then runs them through the hooks.

``qualpipe run`` calls :func:`run`, which loads and validates the pipeline, opens the
run store and calls the ``qualpipe_run_pipeline`` hook. The built-in implementation
(:mod:`qualpipe.builtin.runner`) walks the stages in order; for each it computes the
fingerprint from the *actual* upstream outputs (so a stage whose upstream re-ran but
produced identical data is skipped) and calls ``qualpipe_run_stage`` for the ones that
must run. Plugins wrap both hooks for logging, timing and auditing.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from qualpipe.decisions import Decision as HumanDecision
from qualpipe.decisions import effective_of, fingerprint_of, summarise
from qualpipe.errors import (
    PipelineError,
    PluginError,
    QualpipeError,
    QuarantineError,
    StageError,
)
from qualpipe.executors.base import BatchJob, Executor
from qualpipe.fingerprint import explain_change, hash_paths, stage_components, stage_fingerprint
from qualpipe.pipeline import Pipeline, ResolvedStage, load_pipeline, resolve
from qualpipe.plugins import Manager, create_manager
from qualpipe.progress import Reporter, make_reporter
from qualpipe.stage import StageContext, StageType
from qualpipe.store import DatasetReader, RunStore, StageWriter, open_dataset

log = structlog.get_logger("qualpipe")

RUN = "run"
SKIP = "skip"
UNSELECTED = "not selected"


@dataclass
class RunOptions:
    """How to run: what ``qualpipe run``'s flags set."""

    workdir: Path | None = None
    force: bool = False
    from_stage: str | None = None
    until: str | None = None
    only: str | None = None
    executor: str | None = None
    workers: int | None = None
    executor_options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    progress: bool | None = None


@dataclass
class Decision:
    stage_id: str
    action: str
    reason: str
    fingerprint: str | None = None


@dataclass
class StageResult:
    stage_id: str
    action: str
    reason: str
    manifest: dict[str, Any] | None = None
    seconds: float = 0.0

    def rows(self) -> dict[str, int]:
        if not self.manifest:
            return {}
        return {k: int(v["rows"]) for k, v in self.manifest.get("outputs", {}).items()}


@dataclass
class RunSummary:
    pipeline: str
    workdir: Path
    results: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ran(self) -> list[str]:
        return [r.stage_id for r in self.results if r.action == RUN]

    @property
    def skipped(self) -> list[str]:
        return [r.stage_id for r in self.results if r.action == SKIP]

    @property
    def quarantined(self) -> int:
        total = 0
        for r in self.results:
            for out in (r.manifest or {}).get("outputs", {}).values():
                if out.get("kind") == "quarantine":
                    total += int(out["rows"])
        return total


#: rows per batch for batch-mode stages when neither the pipeline nor the stage type says
DEFAULT_BATCH_SIZE = 256


def default_workdir(pipe: Pipeline) -> Path:
    if pipe.workdir:
        p = Path(pipe.workdir).expanduser()
        return p if p.is_absolute() else pipe.dir / p
    return pipe.dir / ".qualpipe" / pipe.name


class RunContext:
    """One invocation of a pipeline: what ``qualpipe_run_pipeline`` receives."""

    def __init__(
        self,
        manager: Manager,
        pipeline: Pipeline,
        stages: list[ResolvedStage],
        options: RunOptions,
    ) -> None:
        self.manager = manager
        self.pipeline = pipeline
        self.stages = stages
        self.options = options
        self.store = RunStore(options.workdir or default_workdir(pipeline))
        self.summary = RunSummary(pipeline.name, self.store.root)
        self.executor: Executor | None = None
        self.reporter: Reporter = make_reporter(options.progress)
        self._decided: dict[str, Decision] = {}
        self._human: list[HumanDecision] | None = None
        self._selection = self._select()

    @property
    def workdir(self) -> Path:
        return self.store.root

    def stage(self, stage_id: str) -> ResolvedStage:
        return next(s for s in self.stages if s.id == stage_id)

    def _select(self) -> dict[str, str | None]:
        """stage id -> reason it is forced, None (normal), or UNSELECTED."""
        o = self.options
        ids = [s.id for s in self.stages]
        for flag, value in (("--from", o.from_stage), ("--until", o.until), ("--only", o.only)):
            if value is not None and value not in ids:
                self.pipeline.stage(value)  # raises a helpful error
                raise PipelineError(f"{flag}: no stage {value!r}")
        sel: dict[str, str | None] = {}
        start = ids.index(o.from_stage) if o.from_stage else 0
        end = ids.index(o.until) if o.until else len(ids) - 1
        for i, sid in enumerate(ids):
            if o.only is not None:
                sel[sid] = "forced (--only)" if sid == o.only else UNSELECTED
            elif i < start or i > end:
                sel[sid] = UNSELECTED
            elif o.force:
                sel[sid] = "forced (--force)"
            elif o.from_stage is not None:
                sel[sid] = f"forced (--from {o.from_stage})"
            else:
                sel[sid] = None
        return sel

    # -- fingerprints -----------------------------------------------------------
    def input_reader(self, stage: ResolvedStage, name: str) -> DatasetReader:
        b = stage.bindings[name]
        if b.path is not None:
            return open_dataset(b.path)
        assert b.stage is not None and b.output is not None
        manifest = self.store.manifest(b.stage)
        if manifest is None:
            raise StageError(
                stage.id,
                f"input {name!r} needs the output of stage {b.stage!r}, which has not run "
                f"(or was interrupted); run without --only/--from first",
            )
        return self.store.reader(b.stage, b.output)

    def components(self, stage: ResolvedStage, planning: bool) -> dict[str, Any] | str:
        """Fingerprint components, or a reason string if an upstream will change."""
        external = {}
        for p in stage.type.params:
            value = stage.params.get(p.name)
            if p.type in ("path", "paths") and value:
                external[p.name] = hash_paths([value] if isinstance(value, str) else value)
        inputs: dict[str, str] = {}
        for name, b in stage.bindings.items():
            if b.stage is not None and planning:
                up = self._decided.get(b.stage)
                if up is not None and up.action == RUN:
                    return f"upstream {b.stage!r} will run"
            try:
                inputs[name] = self.input_reader(stage, name).fingerprint
            except QualpipeError:
                return f"input {name!r} ({stage.bindings[name].label}) is missing"
        version = stage.type.version or stage.plugin.version
        # Path parameters count by the content of what they point at, not their spelling.
        content_hashed = {p.name for p in stage.type.params if p.type in ("path", "paths")}
        params = {k: v for k, v in stage.params.items() if k not in content_hashed}
        comps = stage_components(
            stage_type=stage.type.name,
            plugin=stage.plugin.name,
            plugin_version=version,
            params=params,
            external=external,
            inputs=inputs,
        )
        if stage.type.components:
            registry = self.manager.registry
            comps["components"] = {f: registry.component_versions(f) for f in stage.type.components}
        if stage.type.decisions:
            # only targets with decisions count, so a stage without any keeps its fingerprint
            decided = self.decisions_for(stage.type)
            per_target = {
                t: fingerprint_of(decided, [t])
                for t in stage.type.decisions
                if any(d.target == t for d in decided)
            }
            if per_target:
                comps["decisions"] = per_target
        return comps

    def human_decisions(self) -> list[HumanDecision]:
        """The researchers' decisions in force (docs/review.md), read once per run so a
        stage's fingerprint and what it acts on come from the same snapshot."""
        if self._human is None:
            self._human = effective_of(self.pipeline.decision_store().all())
        return self._human

    def decisions_for(self, stype: StageType) -> list[HumanDecision]:
        """The effective decisions of the targets the stage type reads."""
        if not stype.decisions:
            return []
        wanted = set(stype.decisions)
        return [d for d in self.human_decisions() if d.target in wanted]

    def components_for(self, stype: StageType) -> dict[str, dict[str, Any]]:
        """The registered components of each family the stage type uses."""
        registry = self.manager.registry
        return {
            family: {name: obj for name, (obj, _) in registry.components[family].items()}
            for family in stype.components
        }

    def decide(
        self, stage: ResolvedStage, planning: bool = False
    ) -> tuple[Decision, dict[str, Any] | None]:
        sel = self._selection[stage.id]
        comps = self.components(stage, planning)
        fp = stage_fingerprint(comps) if isinstance(comps, dict) else None
        if sel == UNSELECTED:
            d = Decision(stage.id, UNSELECTED, "outside --from/--until/--only", fp)
        elif sel is not None:
            d = Decision(stage.id, RUN, sel, fp)
        elif isinstance(comps, str):
            d = Decision(stage.id, RUN, comps, fp)
        else:
            manifest = self.store.manifest(stage.id)
            if manifest is None:
                interrupted = (
                    self.store.has_leftovers(stage.id)
                    or (self.store.stage_dir(stage.id) / "manifest.json").exists()
                )
                d = Decision(
                    stage.id,
                    RUN,
                    "previous run was interrupted" if interrupted else "no output yet",
                    fp,
                )
            elif manifest.get("fingerprint") != fp:
                d = Decision(
                    stage.id, RUN, explain_change(manifest.get("components", {}), comps), fp
                )
            else:
                d = Decision(stage.id, SKIP, "unchanged", fp)
        self._decided[stage.id] = d
        return d, comps if isinstance(comps, dict) else None

    def plan(self) -> list[Decision]:
        """Predict, without running anything, which stages will run and why."""
        self._decided.clear()
        return [self.decide(s, planning=True)[0] for s in self.stages]


class StageRun:
    """One stage about to run: what ``qualpipe_run_stage`` receives."""

    def __init__(
        self,
        run: RunContext,
        stage: ResolvedStage,
        decision: Decision,
        components: dict[str, Any],
    ) -> None:
        self.run = run
        self.stage = stage
        self.decision = decision
        self.components = components

    @property
    def id(self) -> str:
        return self.stage.id

    @property
    def type(self) -> Any:
        return self.stage.type

    @property
    def params(self) -> dict[str, Any]:
        return self.stage.params

    @property
    def plugin(self) -> str:
        return self.stage.plugin.name

    @property
    def fingerprint(self) -> str:
        assert self.decision.fingerprint is not None
        return self.decision.fingerprint

    @property
    def reason(self) -> str:
        return self.decision.reason


def _git_sha(directory: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def execute_stage(sr: StageRun) -> dict[str, Any]:
    """Run one stage and commit its outputs atomically; return its manifest."""
    run, stage = sr.run, sr.stage
    stype = stage.type
    kinds = {}
    for out in stype.outputs:
        kind = run.manager.registry.kind(out.kind)
        assert kind is not None
        kinds[out.name] = kind
    who = f"plugin {stage.plugin.name!r}"
    readers = {name: run.input_reader(stage, name) for name in stage.bindings}
    in_sensitive = any(r.sensitive for r in readers.values())
    if stype.export and in_sensitive and not stage.params.get("allow_sensitive"):
        raise StageError(
            stage.id,
            "refusing to export sensitive (not anonymised) data; anonymise first or set "
            "allow_sensitive: true",
        )
    sensitivity = {
        o.name: (o.sensitive if o.sensitive is not None else in_sensitive) for o in stype.outputs
    }
    try:
        writer = StageWriter(run.store, stage.id, kinds, who)
    except OSError as exc:
        raise StageError(
            stage.id,
            f"cannot create a staging folder in the workdir {str(run.store.root)!r}: "
            f"{exc.strerror or exc}; check its permissions and free space, or choose "
            "another with --workdir",
        ) from exc
    stats: dict[str, Any] = {}
    started, t0 = _now(), time.perf_counter()
    executor_info: dict[str, Any] = {"name": "driver"}
    try:
        if stype.mode == "batch":
            primary = stype.inputs[0].name
            side = {n: r.read_all() for n, r in readers.items() if n != primary}
            job = BatchJob(
                stage_id=stage.id,
                stage_type=stype,
                params=dict(stage.params),
                outputs=kinds,
                output_dirs={n: writer.output_dir(n) for n in kinds},
                who=who,
                batch_size=stage.spec.batch_size or stype.batch_size or DEFAULT_BATCH_SIZE,
                side=side,
                components=run.components_for(stype),
                decisions=run.decisions_for(stype),
            )
            assert run.executor is not None
            executor_info = run.executor.describe()
            with run.reporter.stage(stage.id, readers[primary].rows) as advance:
                parts = run.executor.run_batches(job, readers[primary], advance)
            for name, p in parts.items():
                writer.add_parts(name, p)
        else:
            assert stype.run is not None
            with run.reporter.stage(stage.id, None) as advance:
                ctx = StageContext(
                    stage.id,
                    stage.params,
                    readers,
                    writer.write,
                    run.pipeline.dir,
                    stats,
                    advance,
                    components=run.components_for(stype),
                    pipeline_name=run.pipeline.name,
                    workdir=run.store.root,
                    artifacts_dir=writer.dir,
                    decisions=run.decisions_for(stype),
                    workers=run.executor.processes() if run.executor else 1,
                )
                stype.run(ctx)
    except BaseException as exc:
        writer.abort()
        if isinstance(exc, QualpipeError | KeyboardInterrupt | SystemExit):
            if isinstance(exc, StageError):
                raise
            if isinstance(exc, QualpipeError):
                wrapped = StageError(stage.id, str(exc), stage.plugin.name)
                if isinstance(exc, PipelineError):
                    wrapped.exit_code = exc.exit_code  # bad input (exit 2), not a crash
                raise wrapped from exc
            raise
        if isinstance(exc, BrokenProcessPool):
            raise StageError(
                stage.id,
                "a worker process ended abruptly (killed, or out of memory); nothing of the "
                "stage was kept: run again, with fewer --workers if memory is short",
                stage.plugin.name,
            ) from exc
        msg = str(exc).splitlines()[0][:300] if str(exc) else ""
        raise StageError(
            stage.id,
            f"{type(exc).__name__}: {msg} (run with --debug for the traceback)",
            stage.plugin.name,
        ) from exc
    if stype.decisions:
        # counts only: the report's provenance says how many suggestions people decided on
        stats["decisions"] = summarise(run.decisions_for(stype))
    manifest = {
        "stage_id": stage.id,
        "uses": stype.name,
        "plugin": {
            "name": stage.plugin.name,
            "version": stage.plugin.version,
            "distribution": stage.plugin.distribution,
        },
        "mode": stype.mode,
        "params": stage.params,
        "fingerprint": sr.fingerprint,
        "components": sr.components,
        "inputs": {
            n: {"source": stage.bindings[n].label, "kind": r.kind, "fingerprint": r.fingerprint}
            for n, r in readers.items()
        },
        "started_at": started,
        "finished_at": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "executor": executor_info,
        "stats": stats,
        "pipeline": {"name": run.pipeline.name, "file": str(run.pipeline.path)},
        "qualpipe_version": _version(),
        "git_sha": _git_sha(run.pipeline.dir),
        "reason": sr.reason,
    }
    try:
        return writer.commit(manifest, sensitivity)
    except OSError as exc:
        # a full disk or a failed move while committing: the previous output stays
        writer.abort()
        raise StageError(
            stage.id,
            f"cannot commit its output to {str(run.store.stage_dir(stage.id))!r}: "
            f"{exc.strerror or exc}; check the workdir's free space and permissions "
            "(the previous output, if any, is kept)",
        ) from exc
    except BaseException:
        writer.abort()
        raise


def _version() -> str:
    from qualpipe import __version__

    return __version__


def execute_pipeline(run: RunContext) -> RunSummary:
    """Walk the stages in order, skipping unchanged ones (the built-in runner)."""
    t0 = time.perf_counter()
    run.store.open()
    run._decided.clear()
    try:
        for stage in run.stages:
            decision, comps = run.decide(stage)
            if decision.action != RUN:
                # a skipped stage's outputs are still this run's outputs (quarantine counts)
                run.summary.results.append(
                    StageResult(
                        stage.id, decision.action, decision.reason, run.store.manifest(stage.id)
                    )
                )
                log.info("stage skipped", stage=stage.id, reason=decision.reason)
                continue
            if comps is None:
                # forced stage whose inputs are missing: input_reader gives the error
                for name in stage.bindings:
                    run.input_reader(stage, name)
                raise StageError(stage.id, decision.reason)
            s0 = time.perf_counter()
            try:
                manifest = run.manager.hook.qualpipe_run_stage(
                    stage=StageRun(run, stage, decision, comps)
                )
            except (QualpipeError, KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                # Raised by a hook wrapper around the stage, not by the stage itself.
                who = run.manager.plugin_in_traceback(exc.__traceback__)
                raise StageError(
                    stage.id,
                    f"a qualpipe_run_stage hook raised {type(exc).__name__}: {exc}",
                    who,
                ) from exc
            run.summary.results.append(
                StageResult(stage.id, RUN, decision.reason, manifest, time.perf_counter() - s0)
            )
    finally:
        run.store.close()
    run.summary.seconds = time.perf_counter() - t0
    return run.summary


def _make_executor(manager: Manager, pipe: Pipeline, options: RunOptions) -> Executor:
    conf = dict(pipe.executor)
    name = options.executor or conf.pop("name", None) or "local"
    conf.pop("name", None)
    conf.update(options.executor_options)
    if options.workers is not None:
        conf["workers"] = options.workers
    entry = manager.registry.executors.get(name)
    if entry is None:
        raise PipelineError(
            f"unknown executor {name!r} "
            f"(installed: {', '.join(sorted(manager.registry.executors))}); "
            "is the plugin installed (e.g. pip install 'qualpipe[ray]')?"
        )
    try:
        return entry[0](**conf)
    except TypeError as exc:
        raise PipelineError(f"executor {name!r}: invalid options {conf!r}: {exc}") from None


def prepare(
    pipeline_file: Path | str,
    overrides: Sequence[str] = (),
    options: RunOptions | None = None,
    manager: Manager | None = None,
) -> RunContext:
    """Load, validate and plan a pipeline (nothing runs)."""
    manager = manager or create_manager()
    pipe = load_pipeline(pipeline_file, overrides)
    stages = resolve(pipe, manager.registry)
    return RunContext(manager, pipe, stages, options or RunOptions())


def run(
    pipeline_file: Path | str,
    overrides: Sequence[str] = (),
    options: RunOptions | None = None,
    manager: Manager | None = None,
    on_ready: Callable[[RunContext], None] | None = None,
) -> RunSummary:
    """Run a pipeline file; the API behind ``qualpipe run``."""
    ctx = prepare(pipeline_file, overrides, options, manager)
    ctx.executor = _make_executor(ctx.manager, ctx.pipeline, ctx.options)
    if on_ready:
        on_ready(ctx)
    try:
        summary: RunSummary = ctx.manager.hook.qualpipe_run_pipeline(run=ctx)
    except (QualpipeError, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        who = ctx.manager.plugin_in_traceback(exc.__traceback__)
        raise PluginError(
            who or "unknown", f"qualpipe_run_pipeline hook raised {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        ctx.executor.close()
    if ctx.options.strict and summary.quarantined:
        raise QuarantineError(
            f"{summary.quarantined} input file(s) were quarantined (see the quarantine dataset "
            f"in {summary.workdir}); fix or remove them, or run without --strict"
        )
    return summary
