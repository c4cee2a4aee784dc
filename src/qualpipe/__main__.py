"""``python -m qualpipe``: the same as the ``qualpipe`` command."""

from qualpipe.cli import entry

entry()
