"""The pseudonym key: original value -> replacement, kept apart from the run outputs.

The key is JSON written atomically with mode 0600 (created that way, never widened),
at a path outside the run directory. It is never logged and never exported. Re-running
with an existing key reuses its replacements, so a corpus that grows keeps its names;
its random ``salt`` makes pseudonym choices differ between projects.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qualpipe.errors import QualpipeError

FORMAT = "qualpipe.key/1"


class KeyStore:
    """Replacements by (entity type, value) plus per-type counters."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.salt = secrets.token_hex(16)
        self.entries: dict[tuple[str, str], str] = {}
        self.counters: dict[str, int] = {}
        self.added = 0
        # PERSON values replaced by a placeholder, by name part: a lone "anna" finds the
        # number of "anna berg" (ends) and "anna berg" finds that of "anna" (whole)
        self._ends: dict[str, set[str]] = {}
        self._whole: dict[str, set[str]] = {}

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        store = cls(path)
        # a run killed while saving can leave a temporary copy (real names): remove it
        if path.parent.is_dir():
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
        if not path.exists():
            return store
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            store.salt = str(data["salt"])
            for entry in data["entries"]:
                store.entries[(entry["type"], entry["value"])] = entry["replacement"]
                store._index(entry["type"], entry["value"], entry["replacement"])
            store.counters = {k: int(v) for k, v in data.get("counters", {}).items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # never echo the file's content: it holds real names
            raise QualpipeError(
                f"pseudonym key {str(path)!r} is unreadable ({type(exc).__name__}); restore it "
                "from a backup, or move it away to start a new key (replacements will change)"
            ) from None
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return store

    def get(self, etype: str, value: str) -> str | None:
        return self.entries.get((etype, value))

    def put(self, etype: str, value: str, replacement: str) -> None:
        before = self.entries.get((etype, value))
        if before is None:
            self.added += 1
        elif before != replacement:
            self._index(etype, value, before, remove=True)
        self.entries[(etype, value)] = replacement
        self._index(etype, value, replacement)

    def _index(self, etype: str, value: str, replacement: str, remove: bool = False) -> None:
        if etype != "PERSON" or not replacement.startswith("["):
            return
        parts = value.split()
        if len(parts) == 1:
            where = [self._whole.setdefault(parts[0], set())]
        else:
            where = [self._ends.setdefault(part, set()) for part in {parts[0], parts[-1]}]
        for names in where:
            if remove:
                names.discard(replacement)
            else:
                names.add(replacement)

    def placeholder_names(self, part: str, whole: bool) -> set[str]:
        """Placeholders of PERSON values that are ``part`` alone (``whole``) or that start
        or end with it (the key's values are case-folded)."""
        return (self._whole if whole else self._ends).get(part, set())

    def next_number(self, label: str) -> int:
        self.counters[label] = self.counters.get(label, 0) + 1
        return self.counters[label]

    def originals(self) -> list[tuple[str, str]]:
        """(value, type) of every original in the key (for propagation and the leak guard)."""
        return [(value, etype) for (etype, value) in self.entries if not etype.startswith("_")]

    def replacements(self) -> set[str]:
        return set(self.entries.values())

    def _json_chunks(self, per_chunk: int = 4096) -> Iterator[bytes]:
        """The key as indented JSON, written entry by entry: a key of a million entries
        is never built as one list of dicts and one string in memory."""
        head: dict[str, Any] = {
            "format": FORMAT,
            "warning": "Links pseudonyms to real identities. Keep it apart from the data; "
            "never commit, share or export it.",
            "salt": self.salt,
            "counters": dict(sorted(self.counters.items())),
            "entries": [],
        }
        text = json.dumps(head, ensure_ascii=False, indent=1)
        assert text.endswith('"entries": []\n}')
        if not self.entries:
            yield text.encode("utf-8")
            return
        yield text[: -len("]\n}")].encode("utf-8")
        lines: list[str] = []
        for i, ((t, v), r) in enumerate(sorted(self.entries.items())):
            # the layout json.dumps(indent=1) gives a dict two levels down
            fields = ",\n   ".join(
                f'"{name}": {json.dumps(x, ensure_ascii=False)}'
                for name, x in (("type", t), ("value", v), ("replacement", r))
            )
            lines.append(f"{',' if i else ''}\n  {{\n   {fields}\n  }}")
            if len(lines) >= per_chunk:
                yield "".join(lines).encode("utf-8")
                lines.clear()
        lines.append("\n ]\n}")
        yield "".join(lines).encode("utf-8")

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in self._json_chunks():
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.replace(self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise QualpipeError(
                f"cannot write pseudonym key {str(self.path)!r}: {exc.strerror}; "
                "check the folder's permissions and free space (nothing was committed)"
            ) from None
