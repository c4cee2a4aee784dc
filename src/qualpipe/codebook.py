"""Codebooks: a tree of overarching themes, themes, sub-themes and codes.

The YAML format (docs/codebook.md)::

    codebook: 1
    name: SIDL support in daily living
    codes:
      - id: talking
        name: Talking
        level: theme
        description: Casual, spontaneous conversation; being heard and seen as a person.
        inclusion: Talk valued for itself ...
        exclusion: Formal assessment conversations ...
        examples: ["we just chat while we cook"]
        keywords: [talk, chat, listen, prata, lyssna]
        patterns: ['\\bsmall ?talk\\b']
        colour: "#4e79a7"
        children:
          - id: being-heard
            name: Being heard
            ...

Rules every codebook obeys, whatever file it came from (:meth:`Codebook.validate`):

- ids are unique, ASCII letters, digits, ``.``, ``_`` and ``-``;
- path names (``Theme / Sub-theme / Code``, compared without case) are unique, because
  QDA programs silently drop the second of two codes with one name;
- levels nest: an overarching theme is a root, a theme is a root or sits directly under an
  overarching theme, a sub-theme sits directly under a theme, and a code may sit anywhere
  (codes under codes are sub-codes). A level that breaks this is an error, not a warning:
  theme construction and reports group by level, so a wrong one would silently mislead;
- a node without a level gets one from its place in the tree (:func:`infer_level`).

A codebook's **version** is a content hash of its normalised codes, so every coding records
exactly which codes produced it; REFI-QDA ``.qdc`` import and export live in
:mod:`qualpipe.qdc`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from qualpipe.errors import Location, PipelineError
from qualpipe.fingerprint import canonical_json, sha256_text

LEVELS = ("overarching", "theme", "subtheme", "code")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_CODE_KEYS = (
    "id", "name", "level", "description", "inclusion", "exclusion", "examples", "keywords",
    "patterns", "colour", "color", "children",
)  # fmt: skip
_BOOK_KEYS = ("codebook", "name", "description", "codes")


@dataclass
class Code:
    """One node of the codebook tree."""

    id: str
    name: str
    level: str = "code"
    parent_id: str | None = None
    description: str = ""
    inclusion: str = ""
    exclusion: str = ""
    examples: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    colour: str | None = None
    position: int = 0


@dataclass
class Codebook:
    """An ordered tree of :class:`Code` nodes (parents before children)."""

    name: str
    codes: list[Code]
    description: str = ""

    @property
    def version(self) -> str:
        """Content hash (first 16 hex digits of sha256) of the normalised codes.

        Every field of every code and the order of the codes count; the codebook's own
        ``name`` and ``description`` are labels and do not, so the ``codebook`` dataset
        (which carries codes only) gives back the same version.
        """
        payload = {"codebook": 1, "codes": [asdict(c) for c in self.codes]}
        return sha256_text(canonical_json(payload))[:16]

    def by_id(self) -> dict[str, Code]:
        return {c.id: c for c in self.codes}

    def children(self, code_id: str | None) -> list[Code]:
        return [c for c in self.codes if c.parent_id == code_id]

    def ancestors(self, code_id: str) -> list[Code]:
        """Parents of ``code_id``, nearest first."""
        index = self.by_id()
        out = []
        node = index.get(code_id)
        while node is not None and node.parent_id is not None:
            node = index.get(node.parent_id)
            if node is not None:
                out.append(node)
        return out

    def path_name(self, code_id: str) -> str:
        """``Theme / Sub-theme / Code``: unique display names for QDA programs."""
        node = self.by_id()[code_id]
        names = [a.name for a in reversed(self.ancestors(code_id))] + [node.name]
        return " / ".join(names)

    def path_names(self) -> dict[str, str]:
        """Every code's :meth:`path_name`, in one pass (parents come before children)."""
        out: dict[str, str] = {}
        for c in self.codes:
            parent = out.get(c.parent_id) if c.parent_id is not None else None
            out[c.id] = f"{parent} / {c.name}" if parent is not None else c.name
        return out

    def validate(self, source: str = "codebook") -> None:
        """Raise :class:`PipelineError` (prefixed with ``source``) if a rule is broken.

        The rules are in this module's docstring; loaders call this before returning.
        """
        seen: dict[str, Code] = {}
        paths: dict[str, str] = {}
        for c in self.codes:
            label = f"{source}: code {c.id!r}"
            if not _ID.match(c.id):
                raise PipelineError(f"{source}: {_id_problem(c.id)}")
            if c.id in seen:
                raise PipelineError(f"{source}: duplicate code id {c.id!r}; ids must be unique")
            if not c.name.strip():
                raise PipelineError(f"{label}: name is empty")
            parent = None
            if c.parent_id is not None:
                parent = seen.get(c.parent_id)
                if parent is None:
                    raise PipelineError(
                        f"{label}: parent {c.parent_id!r} is not an earlier code; "
                        "list parents before their children"
                    )
            problem = level_problem(c.level, parent.level if parent else None)
            if problem:
                raise PipelineError(f"{label}: {problem}")
            if c.colour is not None and not _COLOUR.match(c.colour):
                raise PipelineError(f"{label}: {_colour_problem(c.colour)}")
            for p in c.patterns:
                problem = pattern_problem(p)
                if problem:
                    raise PipelineError(f"{label}: {problem}")
            seen[c.id] = c
            path = f"{paths[parent.id]} / {c.name}" if parent else c.name
            paths[c.id] = path
        _check_unique_paths(self, paths, source)

    def to_table(self) -> pa.Table:
        """The ``codebook`` dataset (see docs/datasets.md)."""
        from qualpipe.schemas import CODEBOOK

        version = self.version
        rows = [
            {
                "code_id": c.id,
                "parent_id": c.parent_id,
                "name": c.name,
                "level": c.level,
                "description": c.description,
                "inclusion": c.inclusion,
                "exclusion": c.exclusion,
                "examples": c.examples,
                "keywords": c.keywords,
                "patterns": c.patterns,
                "colour": c.colour,
                "position": c.position,
                "codebook_version": version,
            }
            for c in self.codes
        ]
        return pa.Table.from_pylist(rows, schema=CODEBOOK.schema)

    @classmethod
    def from_table(cls, table: pa.Table, name: str = "codebook", description: str = "") -> Codebook:
        """The inverse of :meth:`to_table`; the version is the table's ``codebook_version``."""
        codes = [
            Code(
                id=r["code_id"],
                name=r["name"],
                level=r.get("level") or "code",
                parent_id=r.get("parent_id"),
                description=r.get("description") or "",
                inclusion=r.get("inclusion") or "",
                exclusion=r.get("exclusion") or "",
                examples=list(r.get("examples") or []),
                keywords=list(r.get("keywords") or []),
                patterns=list(r.get("patterns") or []),
                colour=r.get("colour"),
                position=int(r.get("position") or 0),
            )
            for r in table.to_pylist()
        ]
        return cls(name=name, codes=codes, description=description)


def _check_unique_paths(book: Codebook, paths: Mapping[str, str], source: str) -> None:
    first: dict[str, str] = {}
    for c in book.codes:
        key = paths[c.id].casefold()
        if key in first:
            raise PipelineError(f"{source}: {_duplicate_name(first[key], c.id, paths[c.id])}")
        first[key] = c.id


def _duplicate_name(first: str, second: str, path: str) -> str:
    return (
        f"codes {first!r} and {second!r} have the same name path {path!r} (case is ignored); "
        "QDA programs such as QualCoder keep only one of two codes with one name: rename one"
    )


def _id_problem(code_id: object) -> str:
    return (
        "id must start with a letter or digit and hold only ASCII letters, digits, "
        f"'.', '_' or '-' (got {code_id!r})"
    )


def _colour_problem(colour: str) -> str:
    return f"colour must be #RRGGBB, e.g. '#4e79a7' (got {colour!r})"


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable regular expression, or None."""
    if not pattern:
        return "a pattern is empty (it would match everywhere); remove it"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid pattern {pattern!r}: {exc}"
    return None


def level_problem(level: str, parent_level: str | None) -> str | None:
    """Why ``level`` cannot sit under a node of ``parent_level`` (None: a root), or None."""
    if level not in LEVELS:
        return f"level must be one of {', '.join(LEVELS)} (got {level!r})"
    where = f"under a {parent_level}" if parent_level else "at the top of the codebook"
    if level == "overarching" and parent_level is not None:
        return f"an overarching theme must be at the top of the codebook, not {where}"
    if level == "theme" and parent_level not in (None, "overarching"):
        return (
            f"a theme sits at the top or directly under an overarching theme, not {where}; "
            "use level: subtheme or code"
        )
    if level == "subtheme" and parent_level != "theme":
        return f"a sub-theme sits directly under a theme, not {where}"
    return None


def infer_level(parent_level: str | None, height: int, codable: bool = True) -> str:
    """The level of a node that does not say, from its place in the tree.

    ``height`` is the number of levels below the node (0 for a leaf). A codable leaf is a
    ``code``. Otherwise a node with three or more levels below it is ``overarching``, one
    with one or two is a ``theme``, but never above what its parent allows: under a theme
    it becomes a ``subtheme``, under a sub-theme or a code a ``code``. A non-codable leaf
    (a QualCoder category with no codes yet) counts as having one level below it.
    The result always passes :func:`level_problem`.
    """
    if height == 0 and codable:
        return "code"
    ideal = 0 if height >= 3 else 1
    lowest = 0 if parent_level is None else LEVELS.index(parent_level) + 1
    return LEVELS[min(max(ideal, lowest), len(LEVELS) - 1)]


# ---------------------------------------------------------------------------- YAML


def _text(value: Any, where: str, location: Location | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PipelineError(
            f"{where}: expected text, got {value!r}; put the value in quotes", location
        )
    return str(value).strip()


def _list(value: Any, where: str, location: Location | None = None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        raise PipelineError(
            f"{where}: expected a list of text, got {value!r}; quote yes/no/true/false",
            location,
        )
    return [str(v) for v in value]


def _height(raw: Any) -> int:
    children = raw.get("children") if isinstance(raw, Mapping) else None
    if not isinstance(children, list) or not children:
        return 0
    return 1 + max(_height(c) for c in children)


class _YamlWalk:
    """Builds codes from the YAML tree, with file:line:column in every error."""

    def __init__(self, locs: Any) -> None:
        self.locs = locs
        self.codes: list[Code] = []
        self.ids: dict[str, Location] = {}
        self.paths: dict[str, str] = {}
        self.path_owner: dict[str, str] = {}

    def walk(self, nodes: Any, parent: Code | None, key: tuple[str | int, ...]) -> None:
        if not isinstance(nodes, list):
            raise PipelineError("codes: and children: must be lists of codes", self.locs.get(*key))
        for position, raw in enumerate(nodes):
            self.node(raw, parent, (*key, position), position)

    def node(self, raw: Any, parent: Code | None, key: tuple[str | int, ...], pos: int) -> None:
        at = self.locs.get
        where = f"code #{pos + 1}" + (f" under {parent.id!r}" if parent else "")
        if not isinstance(raw, Mapping):
            raise PipelineError(
                f"{where}: each code is a mapping with id: and name: (got {raw!r})", at(*key)
            )
        if isinstance(raw.get("id"), str) and raw["id"].strip():
            where = f"code {raw['id'].strip()!r}"
        for k in raw:
            if k not in _CODE_KEYS:
                close = difflib.get_close_matches(str(k), _CODE_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise PipelineError(
                    f"{where}: unknown key {k!r}{hint} (known: {', '.join(_CODE_KEYS)})",
                    self.locs.key(*key, k),
                )
        if "colour" in raw and "color" in raw:
            raise PipelineError(f"{where}: give colour: or color:, not both", at(*key, "color"))
        code_id = _text(raw.get("id"), where, at(*key, "id"))
        if not code_id:
            raise PipelineError(f"{where}: id: is required", at(*key))
        if not _ID.match(code_id):
            raise PipelineError(f"{where}: {_id_problem(code_id)}", at(*key, "id"))
        where = f"code {code_id!r}"
        if code_id in self.ids:
            raise PipelineError(
                f"duplicate code id {code_id!r} (first at {self.ids[code_id]}); ids must be unique",
                at(*key, "id"),
            )
        self.ids[code_id] = at(*key, "id")
        name = _text(raw.get("name"), where, at(*key, "name"))
        if not name:
            raise PipelineError(f"{where}: name: is required", at(*key))
        parent_level = parent.level if parent else None
        level = _text(raw.get("level"), where, at(*key, "level"))
        if level:
            problem = level_problem(level, parent_level)
            if problem:
                raise PipelineError(f"{where}: {problem}", at(*key, "level"))
        else:
            level = infer_level(parent_level, _height(raw))
        colour_key = "color" if "color" in raw else "colour"
        colour = _text(raw.get(colour_key), where, at(*key, colour_key)) or None
        if colour is not None:
            if not _COLOUR.match(colour):
                raise PipelineError(f"{where}: {_colour_problem(colour)}", at(*key, colour_key))
            colour = colour.lower()
        patterns = _list(raw.get("patterns"), f"{where} patterns", at(*key, "patterns"))
        for i, p in enumerate(patterns):
            problem = pattern_problem(p)
            if problem:
                raise PipelineError(f"{where}: {problem}", at(*key, "patterns", i))
        path = f"{self.paths[parent.id]} / {name}" if parent else name
        owner = self.path_owner.get(path.casefold())
        if owner is not None:
            raise PipelineError(_duplicate_name(owner, code_id, path), at(*key, "name"))
        self.paths[code_id] = path
        self.path_owner[path.casefold()] = code_id
        code = Code(
            id=code_id,
            name=name,
            level=level,
            parent_id=parent.id if parent else None,
            description=_text(raw.get("description"), where, at(*key, "description")),
            inclusion=_text(raw.get("inclusion"), where, at(*key, "inclusion")),
            exclusion=_text(raw.get("exclusion"), where, at(*key, "exclusion")),
            examples=_list(raw.get("examples"), f"{where} examples", at(*key, "examples")),
            keywords=_list(raw.get("keywords"), f"{where} keywords", at(*key, "keywords")),
            patterns=patterns,
            colour=colour,
            position=pos,
        )
        self.codes.append(code)
        if raw.get("children") is not None:
            self.walk(raw["children"], code, (*key, "children"))


def load_yaml_codebook(path: Path) -> Codebook:
    """Read a YAML codebook; raise PipelineError naming the file, line and problem."""
    from qualpipe.pipeline.yamlload import load_yaml

    shown = str(path)
    try:
        blank = not path.read_bytes().removeprefix(b"\xef\xbb\xbf").strip()
    except OSError as exc:
        raise PipelineError(f"cannot read codebook {shown!r}: {exc.strerror}") from None
    if blank:
        raise PipelineError(f"codebook {shown!r} is empty (see docs/codebook.md)")
    try:
        data, locs = load_yaml(path)
    except PipelineError as exc:  # its messages speak of "the pipeline file"
        message = exc.message.replace("pipeline file", "codebook file")
        raise PipelineError(message, exc.location) from None
    if not isinstance(data, Mapping) or "codes" not in data:
        raise PipelineError(
            f"codebook {shown!r}: expected a mapping with codes: (see docs/codebook.md)"
        )
    for k in data:
        if k not in _BOOK_KEYS:
            raise PipelineError(
                f"unknown key {k!r} in codebook (known: {', '.join(_BOOK_KEYS)})", locs.key(k)
            )
    if data.get("codebook", 1) != 1:
        raise PipelineError(
            f"unsupported codebook format codebook: {data['codebook']!r}; this qualpipe "
            "reads format 1",
            locs.get("codebook"),
        )
    walker = _YamlWalk(locs)
    walker.walk(data["codes"] or [], None, ("codes",))
    if not walker.codes:
        raise PipelineError(f"codebook {shown!r} has no codes", locs.get("codes"))
    book = Codebook(
        name=_text(data.get("name"), "name", locs.get("name")) or path.stem,
        codes=walker.codes,
        description=_text(data.get("description"), "description", locs.get("description")),
    )
    book.validate(shown)
    return book


class _Dumper(yaml.SafeDumper):
    """Block style (``|``) for multi-line text, so descriptions stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def codebook_to_yaml(codebook: Codebook) -> str:
    """The codebook in the YAML format, children nested, every level written out.

    ``load_yaml_codebook`` of the result equals ``codebook`` (positions are the order of
    siblings, as the loader numbers them).
    """
    codebook.validate()
    kids: dict[str | None, list[Code]] = {}
    for c in codebook.codes:
        kids.setdefault(c.parent_id, []).append(c)

    def node(c: Code) -> dict[str, Any]:
        out: dict[str, Any] = {"id": c.id, "name": c.name, "level": c.level}
        for key in ("description", "inclusion", "exclusion"):
            if getattr(c, key):
                out[key] = getattr(c, key)
        for key in ("examples", "keywords", "patterns"):
            if getattr(c, key):
                out[key] = list(getattr(c, key))
        if c.colour:
            out["colour"] = c.colour
        if c.id in kids:
            out["children"] = [node(k) for k in kids[c.id]]
        return out

    doc: dict[str, Any] = {"codebook": 1, "name": codebook.name}
    if codebook.description:
        doc["description"] = codebook.description
    doc["codes"] = [node(c) for c in kids.get(None, [])]
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return text


def load_codebook(path: Path) -> Codebook:
    """Load a codebook from YAML (``.yaml``/``.yml``) or REFI-QDA (``.qdc``)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise PipelineError(f"codebook {str(path)!r} not found; check the path")
    if suffix in (".yaml", ".yml"):
        return load_yaml_codebook(path)
    if suffix == ".qdc":
        from qualpipe.qdc import read_qdc

        return read_qdc(path)
    raise PipelineError(f"codebook {str(path)!r}: use a .yaml or a REFI-QDA .qdc file")


def iter_tree(codebook: Codebook) -> Iterator[tuple[int, Code]]:
    """(depth, code) in tree order."""
    depth: dict[str | None, int] = {None: -1}
    for c in codebook.codes:
        d = depth.get(c.parent_id, -1) + 1
        depth[c.id] = d
        yield d, c


__all__ = [
    "LEVELS",
    "Code",
    "Codebook",
    "codebook_to_yaml",
    "infer_level",
    "iter_tree",
    "level_problem",
    "load_codebook",
    "load_yaml_codebook",
    "pattern_problem",
]
