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

A codebook's **version** is a content hash of its normalised form, so every coding
records exactly which codebook produced it; REFI-QDA ``.qdc`` import and export live in
:mod:`qualpipe.qdc`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from qualpipe.errors import PipelineError
from qualpipe.fingerprint import canonical_json, sha256_text

LEVELS = ("overarching", "theme", "subtheme", "code")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


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
        """Content hash (first 16 hex digits of sha256) of the normalised codebook."""
        payload = {"name": self.name, "codes": [asdict(c) for c in self.codes]}
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
    def from_table(cls, table: pa.Table, name: str = "codebook") -> Codebook:
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
        return cls(name=name, codes=codes)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise PipelineError(f"{where}: expected text, got {value!r}")
    return str(value).strip()


def _list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise PipelineError(f"{where}: expected a list of text, got {value!r}")
    return [str(v) for v in value]


def _walk(
    nodes: Sequence[Any], parent: Code | None, source: str, out: list[Code], seen: set[str]
) -> None:
    for position, raw in enumerate(nodes):
        where = f"{source}: code #{position + 1}" + (f" under {parent.id!r}" if parent else "")
        if not isinstance(raw, Mapping):
            raise PipelineError(f"{where}: each code is a mapping with id: and name:")
        unknown = set(raw) - {
            "id", "name", "level", "description", "inclusion", "exclusion", "examples",
            "keywords", "patterns", "colour", "color", "children",
        }  # fmt: skip
        if unknown:
            raise PipelineError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        code_id = _text(raw.get("id"), where)
        name = _text(raw.get("name"), where)
        if not code_id or not _ID.match(code_id):
            raise PipelineError(
                f"{where}: id must be letters, digits, '.', '_' or '-' (got {code_id!r})"
            )
        if not name:
            raise PipelineError(f"{where} ({code_id}): name: is required")
        if code_id in seen:
            raise PipelineError(f"{where}: duplicate code id {code_id!r}; ids must be unique")
        seen.add(code_id)
        default_level = "theme" if parent is None else "code"
        level = _text(raw.get("level"), where) or default_level
        if level not in LEVELS:
            raise PipelineError(f"{where} ({code_id}): level must be one of {', '.join(LEVELS)}")
        colour = _text(raw.get("colour", raw.get("color")), where) or None
        if colour is not None and not _COLOUR.match(colour):
            raise PipelineError(f"{where} ({code_id}): colour must be #RRGGBB, got {colour!r}")
        patterns = _list(raw.get("patterns"), f"{where} patterns")
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise PipelineError(f"{where} ({code_id}): invalid pattern {p!r}: {exc}") from None
        code = Code(
            id=code_id,
            name=name,
            level=level,
            parent_id=parent.id if parent else None,
            description=_text(raw.get("description"), where),
            inclusion=_text(raw.get("inclusion"), where),
            exclusion=_text(raw.get("exclusion"), where),
            examples=_list(raw.get("examples"), f"{where} examples"),
            keywords=_list(raw.get("keywords"), f"{where} keywords"),
            patterns=patterns,
            colour=colour,
            position=position,
        )
        out.append(code)
        children = raw.get("children") or []
        if not isinstance(children, list):
            raise PipelineError(f"{where} ({code_id}): children: must be a list of codes")
        _walk(children, code, source, out, seen)


def load_yaml_codebook(path: Path) -> Codebook:
    """Read a YAML codebook; raise PipelineError naming the file and the problem."""
    from qualpipe.pipeline.yamlload import load_yaml

    data, _ = load_yaml(path)
    if not isinstance(data, Mapping) or "codes" not in data:
        raise PipelineError(
            f"codebook {str(path)!r}: expected a mapping with codes: (see docs/codebook.md)"
        )
    if data.get("codebook", 1) != 1:
        raise PipelineError(
            f"codebook {str(path)!r}: unsupported format codebook: {data['codebook']!r}"
        )
    codes: list[Code] = []
    _walk(data["codes"] or [], None, str(path), codes, set())
    if not codes:
        raise PipelineError(f"codebook {str(path)!r} has no codes")
    _check_unique_names(codes, str(path))
    return Codebook(
        name=_text(data.get("name"), str(path)) or path.stem,
        codes=codes,
        description=_text(data.get("description"), str(path)),
    )


def _check_unique_names(codes: Sequence[Code], source: str) -> None:
    # QDA programs drop the second of two codes with one name; keep paths unique
    seen: dict[tuple[str | None, str], str] = {}
    for c in codes:
        key = (c.parent_id, c.name.casefold())
        if key in seen:
            raise PipelineError(
                f"{source}: codes {seen[key]!r} and {c.id!r} have the same name {c.name!r} "
                "under the same parent; QDA programs would merge them"
            )
        seen[key] = c.id


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
