"""The exporter API: how the ``export`` stage writes files for people and other tools.

A plugin contributes formats through ``qualpipe_register_exporters``::

    from qualpipe import hookimpl
    from qualpipe.exporters import Exporter

    def export_notes(bundle):
        path = bundle.out_dir / "notes.txt"
        path.write_text(f"{bundle.table('themes').num_rows} themes\\n")
        return [path]

    @hookimpl
    def qualpipe_register_exporters(register):
        register(Exporter("notes", export_notes, needs=("themes",)))

``export(bundle)`` writes its files into ``bundle.out_dir`` (a staging folder: the
stage moves everything into the pipeline's export folder only when every format has
succeeded) and returns the paths it wrote. It reads datasets with ``bundle.table(name)``
(``None`` when the pipeline provides no such dataset) and run provenance with
``bundle.provenance()``. Exporters never see sensitive (not anonymised) data unless the
pipeline says ``allow_sensitive: true``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from qualpipe.store import DatasetReader


@dataclass
class ExportBundle:
    """The datasets and settings an exporter works from."""

    datasets: Mapping[str, DatasetReader]
    out_dir: Path
    options: Mapping[str, Any] = field(default_factory=dict)
    pipeline_name: str = ""
    workdir: Path | None = None
    _cache: dict[str, pa.Table] = field(default_factory=dict)

    def table(self, name: str) -> pa.Table | None:
        """The whole dataset ``name`` (documents, segments, codings, themes, ...)."""
        if name not in self.datasets:
            return None
        if name not in self._cache:
            self._cache[name] = self.datasets[name].read_all()
        return self._cache[name]

    def rows(self, name: str) -> list[dict[str, Any]]:
        table = self.table(name)
        return table.to_pylist() if table is not None else []

    def provenance(self) -> list[dict[str, Any]]:
        """Every stage of the run: id, stage type, plugin and version, parameters, rows,
        timings and git commit, from the stage manifests (never transcript text)."""
        out: list[dict[str, Any]] = []
        if self.workdir is None or not self.workdir.is_dir():
            return out
        for manifest in sorted(self.workdir.glob("*/manifest.json")):
            try:
                m = json.loads(manifest.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            out.append(
                {
                    "stage": m.get("stage_id"),
                    "uses": m.get("uses"),
                    "plugin": m.get("plugin", {}),
                    "params": m.get("params", {}),
                    "rows": {k: v.get("rows") for k, v in m.get("outputs", {}).items()},
                    "finished_at": m.get("finished_at"),
                    "seconds": m.get("seconds"),
                    "qualpipe_version": m.get("qualpipe_version"),
                    "git_sha": m.get("git_sha"),
                    "stats": m.get("stats", {}),
                }
            )
        return sorted(out, key=lambda s: str(s.get("finished_at")))  # ms resolution


ExportFunction = Callable[[ExportBundle], Sequence[Path]]


@dataclass(frozen=True)
class Exporter:
    """A file format the ``export`` stage can write.

    ``needs`` lists the datasets without which the format makes no sense (the stage
    reports a missing one clearly); ``version`` is part of the stage fingerprint.
    """

    name: str
    export: ExportFunction
    needs: tuple[str, ...] = ()
    version: str = "1"
    description: str = ""
