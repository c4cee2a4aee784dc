"""REFI-QDA codebook (.qdc) import and export (placeholder while being written)."""

from __future__ import annotations

from pathlib import Path

from qualpipe.codebook import Codebook
from qualpipe.errors import PipelineError


def read_qdc(path: Path) -> Codebook:
    raise PipelineError(f"{path}: .qdc import is not available yet")
