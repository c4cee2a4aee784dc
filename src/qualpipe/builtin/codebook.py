"""Built-in plugin: the ``codebook`` stage type (a YAML or REFI-QDA codebook file)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qualpipe import Output, Param, StageContext, StageType, hookimpl
from qualpipe.codebook import load_codebook


def run(ctx: StageContext) -> None:
    book = load_codebook(Path(ctx.params["path"]))
    ctx.write("codebook", book.to_table())
    ctx.note("codes", len(book.codes))
    ctx.note("codebook_version", book.version)
    ctx.note("codebook_name", book.name)
    ctx.note("codebook_description", book.description)


CODEBOOK_STAGE = StageType(
    name="codebook",
    family="code",
    description="Load a codebook (YAML, or REFI-QDA .qdc from NVivo, ATLAS.ti, MAXQDA, ...).",
    mode="whole",
    produces=[Output("codebook", "codebook", sensitive=False)],
    params=[Param("path", "path", help="codebook file: .yaml/.yml or .qdc")],
    run=run,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(CODEBOOK_STAGE)
