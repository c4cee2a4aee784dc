"""YAML loading that remembers where every key and value came from (file:line:column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qualpipe.errors import Location, PipelineError

Key = tuple[str | int, ...]


class Locations:
    """Maps a path of keys (``("stages", 2, "with", "paths")``) to its place in the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._marks: dict[Key, tuple[int, int]] = {}
        self._key_marks: dict[Key, tuple[int, int]] = {}

    def add(self, key: Key, mark: yaml.Mark) -> None:
        self._marks[key] = (mark.line + 1, mark.column + 1)

    def add_key(self, key: Key, mark: yaml.Mark) -> None:
        """Remember where the mapping key itself (not its value) is written."""
        self._key_marks[key] = (mark.line + 1, mark.column + 1)

    def get(self, *key: str | int) -> Location:
        """The location of ``key``'s value, or of its nearest parent that has one."""
        k: Key = tuple(key)
        while k and k not in self._marks:
            k = k[:-1]
        if k in self._marks:
            line, col = self._marks[k]
            return Location(self.path, line, col)
        return Location(self.path)

    def key(self, *key: str | int) -> Location:
        """The location of the mapping key ``key`` (for "unknown key" errors)."""
        if tuple(key) in self._key_marks:
            line, col = self._key_marks[tuple(key)]
            return Location(self.path, line, col)
        return self.get(*key)


def _construct(
    node: yaml.Node, key: Key, locs: Locations, constructor: yaml.constructor.SafeConstructor
) -> Any:
    locs.add(key, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for knode, vnode in node.value:
            k = constructor.construct_object(knode, deep=True)
            if not isinstance(k, str | int | float | bool) or k is None:
                raise PipelineError(
                    f"mapping keys must be plain names, got {k!r}",
                    locs_from(locs.path, knode.start_mark),
                )
            kname = str(k)
            if kname in result:
                raise PipelineError(
                    f"duplicate key {kname!r}; remove one of them",
                    locs_from(locs.path, knode.start_mark),
                )
            locs.add_key((*key, kname), knode.start_mark)
            result[kname] = _construct(vnode, (*key, kname), locs, constructor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*key, i), locs, constructor) for i, item in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)


def locs_from(path: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(path)
    return Location(path, mark.line + 1, mark.column + 1)


def _byte_location(path: str, data: bytes, offset: int) -> Location:
    """The line and column (in characters) of byte ``offset``, all valid UTF-8 before it."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return Location(path, data.count(b"\n", 0, offset) + 1, column)


def load_yaml(path: Path) -> tuple[Any, Locations]:
    """Parse ``path``; return the data and the location of every key."""
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"pipeline file {shown!r} not found; check the path") from None
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline file {shown!r}: {exc.strerror}") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"the pipeline file is not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be "
            "decoded); save it as UTF-8",
            _byte_location(shown, data, exc.start),
        ) from None
    locs = Locations(shown)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "invalid YAML"
        raise PipelineError(
            f"invalid YAML: {problem}"
            + (f" ({exc.context})" if exc.context else "")
            + "; check indentation and quoting",
            locs_from(shown, exc.problem_mark),
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"invalid YAML: {exc}", Location(shown)) from None
    if node is None:
        raise PipelineError("the pipeline file is empty", Location(shown, 1, 1))
    constructor = yaml.constructor.SafeConstructor()
    try:
        data = _construct(node, (), locs, constructor)
    except yaml.constructor.ConstructorError as exc:
        raise PipelineError(
            f"invalid YAML value: {exc.problem}", locs_from(shown, exc.problem_mark)
        ) from None
    return data, locs


def parse_scalar(text: str) -> Any:
    """Parse a ``--set`` value as a YAML scalar or list (``3``, ``true``, ``[a, b]``)."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text
