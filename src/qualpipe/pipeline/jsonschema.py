"""A JSON Schema of the pipeline file format, for editors (``qualpipe schema``).

The ``with:`` block of each stage is described per installed stage type, so an editor
with a YAML language server completes and checks parameters.
"""

from __future__ import annotations

import json
from typing import Any

from qualpipe.pipeline.model import FORMAT_VERSION, ID_RE
from qualpipe.plugins import Registry
from qualpipe.stage import Param

_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list": {"type": "array"},
    "dict": {"type": "object"},
    "any": {},
    "path": {"type": "string"},
    "output_path": {"type": "string"},
    "paths": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
}

_INTERP = {"type": "string", "pattern": r"^\$\{[^}]+\}$"}


def _param_schema(p: Param) -> dict[str, Any]:
    """What ``Param.check`` accepts, plus ``${...}`` where the type is not already text."""
    alternatives: list[dict[str, Any]] = [dict(_TYPES[p.type])]
    if p.choices is not None:
        alternatives[0]["enum"] = list(p.choices)
    if p.type == "list":
        alternatives.append({"type": ["string", "number"]})  # one value is a one-item list
    if not p.required and p.default is None:
        alternatives.append({"type": "null"})
    if p.type not in ("str", "path", "output_path", "any") or p.choices is not None:
        alternatives.append(_INTERP)
    schema: dict[str, Any] = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    if p.help:
        schema["description"] = p.help
    if not p.required:
        try:
            json.dumps(p.default)
            schema["default"] = p.default
        except TypeError:
            pass
    return schema


def pipeline_schema(registry: Registry) -> dict[str, Any]:
    stage_variants = []
    for name, (stype, _info) in sorted(registry.stage_types.items()):
        stage_variants.append(
            {
                "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
                "then": {
                    "properties": {
                        "with": {
                            "type": "object",
                            "description": stype.description,
                            "properties": {p.name: _param_schema(p) for p in stype.params},
                            "required": [p.name for p in stype.params if p.required],
                            "additionalProperties": False,
                        }
                    }
                },
            }
        )
    id_pattern = ID_RE.pattern
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://qualpipe.invalid/schema/pipeline-v1.json",
        "title": "qualpipe pipeline file (version 1)",
        "type": "object",
        "required": ["qualpipe", "name", "stages"],
        "additionalProperties": False,
        "properties": {
            "qualpipe": {"const": FORMAT_VERSION, "description": "pipeline file format version"},
            "name": {"type": "string", "pattern": id_pattern},
            "description": {"type": "string"},
            "params": {"type": "object", "description": "values for ${params.NAME}"},
            "workdir": {
                "type": "string",
                "description": "run store folder (default .qualpipe/NAME)",
            },
            "decisions": {
                "type": "string",
                "description": "researchers' decisions file (default decisions/NAME.jsonl)",
            },
            "executor": {
                "oneOf": [
                    {"type": "string"},
                    {"type": "object", "properties": {"name": {"type": "string"}}},
                ]
            },
            "stages": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "uses"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "pattern": id_pattern},
                        "uses": {"type": "string", "enum": sorted(registry.stage_types)},
                        "description": {"type": "string"},
                        "with": {"type": "object"},
                        "batch_size": {"type": "integer", "minimum": 1},
                        "inputs": {
                            "oneOf": [
                                {"type": "string"},
                                {"type": "array", "items": {"type": "string"}},
                                {"type": "object", "additionalProperties": {"type": "string"}},
                            ]
                        },
                    },
                    "allOf": stage_variants,
                },
            },
        },
    }
