"""Pipeline files: loading, overrides, validation and the JSON Schema for editors."""

from __future__ import annotations

from qualpipe.pipeline.model import Pipeline, StageSpec, load_pipeline
from qualpipe.pipeline.validate import Binding, ResolvedStage, resolve

__all__ = ["Binding", "Pipeline", "ResolvedStage", "StageSpec", "load_pipeline", "resolve"]
