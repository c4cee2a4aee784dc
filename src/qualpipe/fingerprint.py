"""Stage fingerprints: what decides whether a stage must run again.

A stage fingerprint is a sha256 over the fingerprint-format version, the stage type and
the plugin (name and version) that provides it, the parameters as sorted JSON, the
content hash of every file a path parameter points at, and the fingerprints of the
datasets it reads. A dataset fingerprint is a sha256 over its part files' bytes, so a
stage whose upstream re-ran but produced identical output is not re-run.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: Bump when the way fingerprints are computed changes: every stage then re-runs once.
FINGERPRINT_FORMAT = 1

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expand_paths(patterns: Iterable[str]) -> list[Path]:
    """Expand files, folders (recursively) and globs into a sorted list of files."""
    files: set[Path] = set()
    for pattern in patterns:
        matches = (
            [Path(m) for m in glob.glob(pattern, recursive=True)]  # noqa: PTH207 - absolute globs
            if glob.has_magic(pattern)
            else [Path(pattern)]
        )
        for m in matches:
            if m.is_dir():
                files.update(p for p in m.rglob("*") if p.is_file() and not _hidden(p, m))
            elif m.is_file():
                files.add(m)
    return sorted(files)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def hash_paths(patterns: Iterable[str]) -> str:
    """Content hash of what the patterns point at (names relative to their roots, bytes)."""
    h = hashlib.sha256()
    patterns = list(patterns)
    for pattern in patterns:
        h.update(b"pattern\0")
        for f in expand_paths([pattern]):
            base = Path(pattern) if Path(pattern).is_dir() else f.parent
            h.update(str(f.relative_to(base)).encode() + b"\0")
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def stage_fingerprint(components: Mapping[str, Any]) -> str:
    """sha256 over the stage's fingerprint components (see :func:`stage_components`)."""
    return sha256_text(canonical_json(components))


def stage_components(
    *,
    stage_type: str,
    plugin: str,
    plugin_version: str,
    params: Mapping[str, Any],
    external: Mapping[str, str],
    inputs: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "format": FINGERPRINT_FORMAT,
        "stage_type": stage_type,
        "plugin": plugin,
        "plugin_version": plugin_version,
        "params": sha256_text(canonical_json(params)),
        "external": dict(sorted(external.items())),
        "inputs": dict(sorted(inputs.items())),
    }


def explain_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """Say in a few words why two sets of fingerprint components differ."""
    if old.get("format") != new.get("format"):
        return "fingerprint format changed"
    if old.get("stage_type") != new.get("stage_type") or old.get("plugin") != new.get("plugin"):
        return f"stage type now provided by {new.get('plugin')!r}"
    if old.get("plugin_version") != new.get("plugin_version"):
        return f"plugin version {old.get('plugin_version')} -> {new.get('plugin_version')}"
    if old.get("params") != new.get("params"):
        return "parameters changed"
    old_ext, new_ext = old.get("external", {}), new.get("external", {})
    for name in sorted(set(old_ext) | set(new_ext)):
        if old_ext.get(name) != new_ext.get(name):
            return f"files of parameter {name!r} changed"
    if old.get("components") != new.get("components"):
        return "components (readers, recognisers, ...) changed"
    old_dec, new_dec = old.get("decisions", {}), new.get("decisions", {})
    if old_dec != new_dec:
        targets = sorted(t for t in set(old_dec) | set(new_dec) if old_dec.get(t) != new_dec.get(t))
        return f"decisions changed ({', '.join(targets)})"
    old_in, new_in = old.get("inputs", {}), new.get("inputs", {})
    for name in sorted(set(old_in) | set(new_in)):
        if old_in.get(name) != new_in.get(name):
            return f"input {name!r} changed"
    return "fingerprint changed"
