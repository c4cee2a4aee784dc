"""The one handled error family of qualpipe.

Every error a user can cause (a bad pipeline file, a missing input, a plugin that
misbehaves) is a :class:`QualpipeError`. The CLI prints ``str(error)`` on one line and
exits with ``error.exit_code``; ``--debug`` adds the traceback. Messages say what failed,
show the offending value and say how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Exit codes of the ``qualpipe`` command (documented in docs/cli.md).
EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_INVALID = 2
EXIT_PLUGIN = 3
EXIT_QUARANTINE = 4
EXIT_INTERRUPTED = 130


class QualpipeError(Exception):
    """Base class: a failure with a one-line, actionable message."""

    exit_code = EXIT_STAGE_FAILED


@dataclass(frozen=True)
class Location:
    """A position in a file, 1-based as editors show it."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.column}"


class PipelineError(QualpipeError):
    """The pipeline file (or a ``--set`` override) is invalid."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, location: Location | None = None) -> None:
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class PluginError(QualpipeError):
    """A plugin failed to load, register, or returned something invalid."""

    exit_code = EXIT_PLUGIN

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class StageError(QualpipeError):
    """A stage failed while running; nothing of it was committed to the run store."""

    exit_code = EXIT_STAGE_FAILED

    def __init__(self, stage_id: str, message: str, plugin: str | None = None) -> None:
        self.stage_id = stage_id
        self.plugin = plugin
        who = f" (plugin {plugin!r})" if plugin else ""
        super().__init__(f"stage {stage_id!r}{who}: {message}")


class DatasetError(QualpipeError):
    """A dataset is missing, incomplete or does not match its declared schema."""

    exit_code = EXIT_INVALID


class QuarantineError(QualpipeError):
    """Inputs were quarantined and the run was asked to be strict about it."""

    exit_code = EXIT_QUARANTINE
