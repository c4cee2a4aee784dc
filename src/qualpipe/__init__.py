"""qualpipe: reproducible, plugin-based pipelines for qualitative interview analysis.

The public API for plugin authors::

    from qualpipe import hookimpl, StageType, Param, Input, Output, DatasetKind

Everything else is internal and may change between minor versions.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: The one marker for hook implementations, used by built-ins and third parties alike.
hookimpl = pluggy.HookimplMarker("qualpipe")

from qualpipe.datasets import DatasetKind  # noqa: E402
from qualpipe.errors import (  # noqa: E402
    DatasetError,
    PipelineError,
    PluginError,
    QualpipeError,
    StageError,
)
from qualpipe.stage import (  # noqa: E402
    REQUIRED,
    BatchContext,
    Input,
    Output,
    Param,
    StageContext,
    StageType,
)

__all__ = [
    "REQUIRED",
    "BatchContext",
    "DatasetError",
    "DatasetKind",
    "Input",
    "Output",
    "Param",
    "PipelineError",
    "PluginError",
    "QualpipeError",
    "StageContext",
    "StageError",
    "StageType",
    "__version__",
    "hookimpl",
]
