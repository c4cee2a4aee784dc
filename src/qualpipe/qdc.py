"""REFI-QDA codebook (``.qdc``) export and import (QDA-XML codebook 1.0, REFI-QDA 1.5).

Export (:func:`write_qdc`) writes UTF-8 without a BOM, LF line ends, and one nested
``<Code guid name isCodable color>`` per node, every node codable. GUIDs are uuid5 of the
codebook name and the code id, so a re-export gives the same GUIDs and the same bytes. The
``<Description>`` holds the description and then readable ``Inclusion:``, ``Exclusion:``,
``Examples:``, ``Keywords:`` and ``Patterns:`` paragraphs, and a last line
``qualpipe: {"id": ..., "level": ...}`` that lets :func:`read_qdc` give back the same
codebook. A code whose name is used more than once in the codebook is written under the
shortest unique tail of its path (``Talking / Other``): QualCoder drops the second of two
codes with one name.

Import (:func:`read_qdc`) takes files from NVivo, ATLAS.ti, MAXQDA, QualCoder and others:
with or without an XML declaration or BOM, CRLF, no colours, 3-digit colours, nested codes,
``<Sets>`` and unknown elements (ignored), or a whole ``project.qde``. Ids come from the
qualpipe marker when there is one, otherwise from the name (ASCII slug, ``-2``, ``-3`` for
repeats); levels from the marker when it still fits the tree, otherwise from the tree
(:func:`qualpipe.codebook.infer_level`; ``isCodable="false"`` marks a category). lxml
parses when it is installed, else the standard library; both give the same codebook.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualpipe.codebook import (
    LEVELS,
    Code,
    Codebook,
    codebook_to_yaml,
    infer_level,
    level_problem,
)
from qualpipe.errors import PipelineError

NS = "urn:QDA-XML:codebook:1.0"
_REFI_NS = "urn:QDA-XML:"
#: uuid5 namespace of qualpipe's code GUIDs (fixed forever: changing it changes every GUID).
GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:qualpipe:refi-qda:codebook")
_MARKER = "qualpipe: "
_SECTIONS = ("Inclusion", "Exclusion", "Examples", "Keywords", "Patterns")
_HEADING = re.compile(r"^(Inclusion|Exclusion|Examples|Keywords|Patterns):(?: (.*))?$")
_BOOK_COMMENT = re.compile(rb"<!--\s*qualpipe-codebook (\{.*?\})\s*-->", re.S)
# characters XML 1.0 cannot hold at all
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # as qualpipe.codebook
_HEX = re.compile(r"^#?([0-9A-Fa-f]{6}|[0-9A-Fa-f]{3})$")


def code_guid(codebook_name: str, code_id: str) -> str:
    """The GUID qualpipe writes for ``code_id`` of the codebook called ``codebook_name``."""
    return str(uuid.uuid5(GUID_NAMESPACE, json.dumps([codebook_name, code_id])))


# ---------------------------------------------------------------------------- export


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _items(values: list[str]) -> str:
    return "\n".join("- " + v.replace("\n", "\n  ") for v in values)


_TEXT_FIELDS = ("description", "inclusion", "exclusion")
_LIST_FIELDS = ("examples", "keywords", "patterns")


def _fields(code: Code) -> dict[str, Any]:
    return {f: getattr(code, f) for f in _TEXT_FIELDS} | {
        f: list(getattr(code, f)) for f in _LIST_FIELDS
    }


def _readable(code: Code, marker: dict[str, Any]) -> str:
    parts = [code.description] if code.description else []
    if code.inclusion:
        parts.append(f"Inclusion: {code.inclusion}")
    if code.exclusion:
        parts.append(f"Exclusion: {code.exclusion}")
    if code.examples:
        parts.append("Examples:\n" + _items(code.examples))
    if code.keywords:
        inline = all(k and k == k.strip() and "," not in k and "\n" not in k for k in code.keywords)
        parts.append(
            "Keywords: " + ", ".join(code.keywords)
            if inline
            else "Keywords:\n" + _items(code.keywords)
        )
    if code.patterns:
        parts.append("Patterns:\n" + _items(code.patterns))
    parts.append(_MARKER + json.dumps(marker, ensure_ascii=False))
    return _xml_text("\n\n".join(parts))


def describe(code: Code, marker: dict[str, Any]) -> str:
    """The ``<Description>`` text of ``code`` (see the module docstring).

    When the readable text alone would not give the fields back (a description with a
    paragraph that starts ``Inclusion:``, text with surrounding spaces), the marker also
    carries them as JSON, so an import is always exact.
    """
    text = _readable(code, marker)
    if parse_description(text)[0] != _fields(code):
        text = _readable(code, {**marker, "fields": _fields(code)})
    return text


def written_names(book: Codebook) -> dict[str, str]:
    """The name each code is exported under (a ``.qdpx`` export should use the same).

    A code's own name, or where that name is used more than once in the whole codebook
    (case ignored), the shortest tail of its path that is unique: ``Talking / Other``.
    """
    parts: dict[str, list[str]] = {}
    for c in book.codes:
        parts[c.id] = [*parts[c.parent_id], c.name] if c.parent_id is not None else [c.name]
    used = dict.fromkeys(parts, 1)
    while True:
        names = {i: " / ".join(p[-used[i] :]) for i, p in parts.items()}
        owners: dict[str, list[str]] = {}
        for code_id, name in names.items():
            owners.setdefault(name.casefold(), []).append(code_id)
        grow = [
            i for ids in owners.values() if len(ids) > 1 for i in ids if used[i] < len(parts[i])
        ]
        if not grow:  # unique (validate() guarantees that full paths are)
            return names
        for i in grow:
            used[i] += 1


def qdc_bytes(codebook: Codebook, origin: str | None = None) -> bytes:
    """The ``.qdc`` document for ``codebook`` (deterministic: same codebook, same bytes)."""
    from qualpipe import __version__

    codebook.validate()
    # plain tags and an explicit xmlns: ElementTree cannot default-namespace unqualified
    # attributes
    root = ET.Element("CodeBook", {"xmlns": NS, "origin": origin or f"qualpipe {__version__}"})
    label = {"name": codebook.name}
    if codebook.description:
        label["description"] = codebook.description
    # an XML comment is invisible to QDA programs; "--" may not appear inside one
    book_json = json.dumps(label, ensure_ascii=False).replace("--", "-\\u002d")
    root.append(ET.Comment(f" qualpipe-codebook {_xml_text(book_json)} "))
    codes = ET.SubElement(root, "Codes")
    names = written_names(codebook)
    elements: dict[str | None, ET.Element] = {None: codes}
    for c in codebook.codes:
        attrs = {
            "guid": code_guid(codebook.name, c.id),
            "name": _xml_text(names[c.id]),
            "isCodable": "true",
        }
        if c.colour:
            attrs["color"] = c.colour.upper()
        el = ET.SubElement(elements[c.parent_id], "Code", attrs)
        marker: dict[str, Any] = {"id": c.id, "level": c.level}
        if names[c.id] != c.name:
            marker["name"] = c.name
        ET.SubElement(el, "Description").text = describe(c, marker)
        elements[c.id] = el
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n").encode("utf-8")


def write_qdc(codebook: Codebook, path: Path) -> Path:
    """Write ``codebook`` as a REFI-QDA codebook file (atomically) and return ``path``."""
    data = qdc_bytes(codebook)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise PipelineError(f"cannot write codebook {str(path)!r}: {exc.strerror}") from None
    return path


# ---------------------------------------------------------------------------- import


@dataclass
class _Node:
    name: str
    codable: bool
    colour: str | None
    fields: dict[str, Any]
    marker: dict[str, Any] | None
    children: list[_Node] = field(default_factory=list)

    def height(self) -> int:
        return 1 + max(c.height() for c in self.children) if self.children else 0


def _list_items(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        if line.startswith("- ") or line == "-":
            items.append(line[2:])
        elif items and (line.startswith("  ") or not line.strip()):
            items[-1] += "\n" + line[2:]
        elif line.strip():  # hand-edited: a line without "- " is an item of its own
            items.append(line.strip())
    return items


_FIELDS = _TEXT_FIELDS + _LIST_FIELDS


def _exact_fields(fields: dict[str, Any]) -> bool:
    texts = all(isinstance(fields.get(f, ""), str) for f in _TEXT_FIELDS)
    lists = all(
        isinstance(fields.get(f, []), list) and all(isinstance(v, str) for v in fields.get(f, []))
        for f in _LIST_FIELDS
    )
    return texts and lists


def parse_description(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Split a ``<Description>`` into code fields and the qualpipe marker (or None).

    Without a marker the whole text is the description: headings are only read back from
    descriptions qualpipe wrote.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    marker = None
    if lines[-1].startswith(_MARKER):
        try:
            marker = json.loads(lines[-1][len(_MARKER) :])
        except ValueError:
            marker = None
        if not isinstance(marker, dict) or not isinstance(marker.get("id"), str):
            marker = None
    if marker is None:
        return {"description": "\n".join(lines)}, None
    exact = marker.get("fields")
    if isinstance(exact, dict) and _exact_fields(exact):
        return {f: exact.get(f) or ([] if f in _LIST_FIELDS else "") for f in _FIELDS}, marker
    body = lines[:-1]
    buffers: dict[str, list[str]] = {"description": []}
    current, rank = "description", -1
    for i, line in enumerate(body):
        m = _HEADING.match(line)
        if m and (i == 0 or not body[i - 1].strip()) and _SECTIONS.index(m[1]) > rank:
            current, rank = m[1], _SECTIONS.index(m[1])
            buffers[current] = [m[2] or ""]  # first line: text after the heading
            continue
        buffers[current].append(line)
    for lines_ in buffers.values():  # the blank line that separated the next paragraph
        if lines_ and not lines_[-1].strip():
            lines_.pop()

    def joined(name: str) -> str:
        return "\n".join(buffers.get(name, [])).strip()

    def items(name: str) -> list[str]:
        first, *rest = buffers.get(name) or [""]
        return ([first.strip()] if first.strip() else []) + _list_items(rest)

    fields: dict[str, Any] = {
        "description": joined("description"),
        "inclusion": joined("Inclusion"),
        "exclusion": joined("Exclusion"),
        "examples": items("Examples"),
        "keywords": items("Keywords"),
        "patterns": items("Patterns"),
    }
    inline = buffers.get("Keywords", [""])[0]
    if inline.strip():  # "Keywords: a, b, c"
        fields["keywords"] = [k.strip() for k in joined("Keywords").split(",") if k.strip()]
    return fields, marker


def _local(tag: Any) -> str | None:
    """The local name of an element (None for comments and processing instructions)."""
    if not isinstance(tag, str):
        return None
    return tag.rsplit("}", 1)[-1]


def _kids(el: Any, name: str) -> list[Any]:
    return [k for k in el if _local(k.tag) == name]


def _colour(value: str | None) -> str | None:
    m = _HEX.match((value or "").strip())
    if not m:
        return None  # a colour we cannot read is not worth refusing the codebook for
    digits = m[1] if len(m[1]) == 6 else "".join(ch * 2 for ch in m[1])
    return "#" + digits.lower()


def _parse_xml(data: bytes, source: str) -> Any:
    """Parse with lxml when installed (entities and network off), else the standard library."""
    try:
        etree = importlib.import_module("lxml.etree")
    except ImportError:
        etree = None
    if etree is not None and _USE_LXML:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        try:
            return etree.fromstring(data, parser)
        except etree.XMLSyntaxError as exc:
            raise PipelineError(
                f"codebook {source!r} is not a readable XML file: {exc}; export the "
                "codebook again as REFI-QDA (.qdc)"
            ) from None
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise PipelineError(
            f"codebook {source!r} is not a readable XML file: {exc}; export the codebook "
            "again as REFI-QDA (.qdc)"
        ) from None


#: tests switch this off to check the standard-library path
_USE_LXML = True


def _codebook_element(root: Any, source: str) -> Any:
    tag = root.tag if isinstance(root.tag, str) else ""
    ns = tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
    if ns and not ns.startswith(_REFI_NS):
        raise PipelineError(
            f"codebook {source!r} is XML in namespace {ns!r}, not a REFI-QDA codebook ({NS})"
        )
    if _local(tag) == "Project":  # a project.qde: take its codebook
        books = _kids(root, "CodeBook")
        if not books:
            raise PipelineError(f"codebook {source!r} is a REFI-QDA project without a codebook")
        return books[0]
    if _local(tag) != "CodeBook":
        raise PipelineError(
            f"codebook {source!r}: root element is <{_local(tag)}>, not a REFI-QDA "
            "<CodeBook>; export the codebook as REFI-QDA (.qdc)"
        )
    return root


def _nodes(parent: Any, source: str, trail: str) -> list[_Node]:
    out = []
    for i, el in enumerate(_kids(parent, "Code")):
        name = (el.get("name") or "").strip()
        if not name:
            raise PipelineError(
                f"codebook {source!r}: code #{i + 1}{trail} (guid {el.get('guid')!r}) has no name"
            )
        texts = ["".join(d.itertext()) for d in _kids(el, "Description")]
        fields, marker = parse_description("\n\n".join(t for t in texts if t.strip()))
        out.append(
            _Node(
                name=name,
                codable=(el.get("isCodable") or "true").strip().lower() not in ("false", "0"),
                colour=_colour(el.get("color")),
                fields=fields,
                marker=marker,
                children=_nodes(el, source, f" under {name!r}"),
            )
        )
    return out


# letters that NFKD does not take apart into an ASCII letter and an accent
_SPELL = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "œ": "oe",
                        "Œ": "Oe", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "þ": "th",
                        "Þ": "Th", "ð": "d", "Ð": "D"})  # fmt: skip


def slug(name: str) -> str:
    """An ASCII id for a name: ``Här och där`` gives ``har-och-dar``."""
    spelt = name.translate(_SPELL)
    ascii_ = unicodedata.normalize("NFKD", spelt).encode("ascii", "ignore").decode()
    s = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    return s or "code"


class _Builder:
    def __init__(self, roots: list[_Node]) -> None:
        self.ids: dict[int, str] = {}
        taken: set[str] = set()
        order = list(self._preorder(roots))
        for node in order:  # marker ids first, so a slug never takes one
            mid = node.marker.get("id") if node.marker else None
            if isinstance(mid, str) and mid not in taken and _ID.match(mid):
                self.ids[id(node)] = mid
                taken.add(mid)
        for node in order:
            if id(node) not in self.ids:
                base = slug(node.name)
                candidate, n = base, 1
                while candidate in taken:
                    n += 1
                    candidate = f"{base}-{n}"
                self.ids[id(node)] = candidate
                taken.add(candidate)
        self.codes: list[Code] = []
        self._add(roots, None)

    def _preorder(self, nodes: list[_Node]) -> Iterator[_Node]:
        for n in nodes:
            yield n
            yield from self._preorder(n.children)

    def _add(self, nodes: list[_Node], parent: Code | None) -> None:
        seen: set[str] = set()
        for position, node in enumerate(nodes):
            parent_level = parent.level if parent else None
            level = node.marker.get("level") if node.marker else None
            if not isinstance(level, str) or level not in LEVELS:
                level = None
            if level is None or level_problem(level, parent_level):  # moved in a QDA program
                level = infer_level(parent_level, node.height(), node.codable)
            name = self._name(node)
            candidate, n = name, 1
            while candidate.casefold() in seen:  # QualCoder would drop it: keep it, renamed
                n += 1
                candidate = f"{name} ({n})"
            seen.add(candidate.casefold())
            f = node.fields
            code = Code(
                id=self.ids[id(node)],
                name=candidate,
                level=level,
                parent_id=parent.id if parent else None,
                description=f["description"],
                inclusion=f.get("inclusion", ""),
                exclusion=f.get("exclusion", ""),
                examples=f.get("examples", []),
                keywords=f.get("keywords", []),
                patterns=[p for p in f.get("patterns", []) if p],
                colour=node.colour,
                position=position,
            )
            self.codes.append(code)
            self._add(node.children, code)

    @staticmethod
    def _name(node: _Node) -> str:
        # qualpipe writes a repeated name as its path ("Talking / Other") and keeps the
        # plain name in the marker; trust it only while the written name still ends with it
        original = node.marker.get("name") if node.marker else None
        if isinstance(original, str) and original.strip():
            original = original.strip()
            if node.name == original or node.name.endswith(" / " + original):
                return original
        return node.name


def parse_qdc(data: bytes, source: str, default_name: str = "codebook") -> Codebook:
    """The codebook in a ``.qdc`` (or ``project.qde``) document; ``source`` names it in errors."""
    if not data.strip():
        raise PipelineError(f"codebook {source!r} is empty; export the codebook again")
    root = _parse_xml(data, source)
    book = _codebook_element(root, source)
    containers = _kids(book, "Codes")
    if not containers:
        raise PipelineError(f"codebook {source!r} has no <Codes> element")
    roots = [n for c in containers for n in _nodes(c, source, "")]
    if not roots:
        raise PipelineError(f"codebook {source!r} has no codes")
    name, description = default_name, ""
    if _local(root.tag) == "Project" and (root.get("name") or "").strip():
        name = (root.get("name") or "").strip()
    found = _BOOK_COMMENT.search(data)
    if found and (book.get("origin") or "").startswith("qualpipe"):
        try:
            label = json.loads(found[1].decode("utf-8"))
        except ValueError:
            label = {}
        if isinstance(label, dict) and isinstance(label.get("name"), str) and label["name"]:
            name = label["name"]
            description = str(label.get("description") or "")
    codebook = Codebook(name=name, codes=_Builder(roots).codes, description=description)
    codebook.validate(f"codebook {source!r}")
    return codebook


def read_qdc(path: Path) -> Codebook:
    """Read a REFI-QDA codebook file; a file that is not one raises PipelineError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read codebook {str(path)!r}: {exc.strerror}") from None
    return parse_qdc(data, str(path), default_name=path.stem)


def qdc_to_yaml(path: Path) -> str:
    """A ``.qdc`` file as a qualpipe YAML codebook (:func:`qualpipe.codebook.codebook_to_yaml`)."""
    return codebook_to_yaml(read_qdc(path))


__all__ = [
    "GUID_NAMESPACE",
    "NS",
    "code_guid",
    "describe",
    "parse_description",
    "parse_qdc",
    "qdc_bytes",
    "qdc_to_yaml",
    "read_qdc",
    "slug",
    "write_qdc",
    "written_names",
]
