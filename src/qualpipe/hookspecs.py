"""The qualpipe plugin contract: every hook a plugin can implement.

This module is the hook reference (docs/hooks.md is generated from these docstrings).
Implement hooks in a module or class with the public marker::

    from qualpipe import hookimpl

    @hookimpl
    def qualpipe_register_stages(register):
        register(my_stage_type)

and expose the module through the ``qualpipe`` entry-point group in your package's
``pyproject.toml``::

    [project.entry-points.qualpipe]
    my_plugin = "my_package.plugin"

Registration hooks receive a ``register`` callback rather than returning values, so the
core always knows which plugin (and version) supplied what, and reports a name clash
between two plugins naming both. Built-in stages use exactly the same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from qualpipe.anonymise.recognisers import Recogniser
    from qualpipe.coding.coders import Coder
    from qualpipe.datasets import DatasetKind
    from qualpipe.executors.base import ExecutorFactory
    from qualpipe.exporters import Exporter
    from qualpipe.readers import Reader
    from qualpipe.runner import RunContext, StageRun
    from qualpipe.stage import StageType

hookspec = pluggy.HookspecMarker("qualpipe")


@hookspec
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    """Register stage types that pipeline files can ``use``.

    Call ``register(stage_type)`` once per :class:`qualpipe.StageType`. The stage type's
    ``name`` is what a pipeline file writes after ``uses:``; it must be unique across all
    installed plugins (a clash is an error naming both plugins). A stage type declares
    the dataset kinds it consumes and produces, its parameters (type, default, help
    text) and whether it runs batch by batch (``mode="batch"``: streamable and
    distributable) or needs whole datasets (``mode="whole"``).
    """


@hookspec
def qualpipe_register_dataset_kinds(register: Callable[[DatasetKind], None]) -> None:
    """Register dataset kinds: a name, a version and an Arrow schema.

    Call ``register(kind)`` once per :class:`qualpipe.DatasetKind`. Stages declare the
    kinds they consume and produce by name; the runner checks every batch a stage
    writes against the kind's schema before anything is committed. Core kinds
    (``documents``, ``segments``, ``codings``, ...) are registered by the built-in
    plugin ``qualpipe.builtin.kinds``; a plugin may add kinds of its own, whose names
    must not clash with existing ones.
    """


@hookspec
def qualpipe_register_executors(register: Callable[[str, ExecutorFactory], None]) -> None:
    """Register executors that ``qualpipe run --executor NAME`` can select.

    Call ``register(name, factory)``; ``factory(**options)`` returns an object that
    implements :class:`qualpipe.executors.base.Executor`. The built-in ``local``
    executor streams record batches on this machine (optionally in several processes);
    a distributed engine is just another executor plugin.
    """


@hookspec
def qualpipe_register_readers(register: Callable[[Reader], None]) -> None:
    """Register file readers for the ``ingest`` stage.

    Call ``register(reader)`` once per :class:`qualpipe.readers.Reader`: a name, the
    file suffixes it reads (``(".docx",)``) and a ``read(path, options)`` function that
    yields :class:`qualpipe.readers.RawDocument` objects. Reader names are unique across
    plugins; when two enabled readers claim the same suffix, ``ingest`` asks the
    pipeline to choose with its ``readers:`` parameter. A reader raises
    :class:`qualpipe.readers.UnreadableFile` with a one-line reason for a file it cannot
    read: the file is quarantined and the batch goes on.
    """


@hookspec
def qualpipe_register_recognisers(register: Callable[[Recogniser], None]) -> None:
    """Register entity recognisers for the ``anonymise`` stage.

    Call ``register(recogniser)`` once per
    :class:`qualpipe.anonymise.recognisers.Recogniser`: a unique name, the entity types
    it finds, a ``find(text, ctx)`` function yielding
    :class:`~qualpipe.anonymise.recognisers.Span` objects (offsets only, never the text)
    and optionally a ``setup(options)`` run once per process to load models or compile
    patterns. Pipelines choose recognisers by name with the stage's ``recognisers``
    parameter; every finding records the recogniser that made it, and recogniser
    versions are part of the stage fingerprint.
    """


@hookspec
def qualpipe_register_coders(register: Callable[[Coder], None]) -> None:
    """Register coders for the ``code`` stage.

    Call ``register(coder)`` once per :class:`qualpipe.coding.coders.Coder`: a unique
    name, a ``code(segments, ctx)`` function yielding
    :class:`~qualpipe.coding.coders.Suggestion` objects (segment, code, score and the
    evidence: matched terms with their offsets into the document text) and optionally a
    ``setup(codebook, options)`` run once per process and codebook version. Pipelines
    choose coders by name (``coders: [rules, {name: semantic, threshold: 0.3}]``);
    each coding records the coder, its version and a hash of its settings.
    """


@hookspec
def qualpipe_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Register export formats for the ``export`` stage.

    Call ``register(exporter)`` once per :class:`qualpipe.exporters.Exporter`: a unique
    name (what ``formats:`` lists), an ``export(bundle)`` function that writes files
    into ``bundle.out_dir`` from the datasets in ``bundle`` and returns their paths,
    and the datasets it ``needs``. The stage moves the files into the export folder
    only when every format succeeded, and refuses sensitive (not anonymised) data
    unless the pipeline allows it explicitly.
    """


@hookspec
def qualpipe_register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``qualpipe`` command line.

    ``cli`` is the top-level :class:`click.Group`; decorate new commands with
    ``@cli.command()``. A command whose name is already taken is an error naming both
    plugins. Raise :class:`qualpipe.QualpipeError` for user errors so the CLI prints a
    one-line message.
    """


@hookspec(firstresult=True)
def qualpipe_run_pipeline(run: RunContext) -> Any:
    """Run a whole pipeline (first result wins).

    The built-in runner implements this hook and returns a
    :class:`qualpipe.runner.RunSummary`. Plugins normally implement it as a *wrapper*
    (``@hookimpl(wrapper=True)``, then ``result = yield``) to time a run, attach logging
    context, send a notification or keep an audit trail; a wrapper must re-raise (or
    let through) exceptions it does not handle. ``run`` carries the pipeline, the
    workdir and the plan (which stages will run and why).
    """


@hookspec(firstresult=True)
def qualpipe_run_stage(stage: StageRun) -> Any:
    """Run one stage of a pipeline (first result wins).

    The built-in runner implements this hook and returns the stage's manifest
    (a ``dict``) once its outputs are committed. Implement it as a wrapper
    (``@hookimpl(wrapper=True)``) for per-stage timing, progress or auditing. ``stage``
    holds the stage id, its type, resolved parameters, input datasets, fingerprint and
    the plugin that provides it. Skipped (unchanged) stages do not reach this hook.
    """
