"""The anonymisation review page: every replacement highlighted, typed and filterable.

A single self-contained HTML file (no network, no external scripts) showing the
*anonymised* text only, so a researcher can check the result without ever opening the
key. Counts per entity type and recogniser head the page; type filters hide or show
highlights; each highlight's tooltip names the recogniser and score.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from qualpipe.anonymise.replace import Replaced

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:60rem;
line-height:1.55;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.05rem;margin-top:2rem;border-bottom:1px solid #ddd}
.doc{white-space:pre-wrap;background:#fafafa;border:1px solid #e4e4e4;padding:1rem;
border-radius:6px}
mark{padding:0 .15em;border-radius:3px;background:#ffe08a}
mark[data-t=PERSON]{background:#ffc9c9}mark[data-t=PLACE]{background:#c3f0ca}
mark[data-t=ORG]{background:#c9dcff}mark[data-t=DATE]{background:#f0d9ff}
mark[data-t=PHONE],mark[data-t=EMAIL],mark[data-t=ID],mark[data-t=URL],mark[data-t=IP]{background:#ffd8b0}
mark small{font-size:.65em;color:#555;margin-left:.2em;vertical-align:super}
table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.2rem .6rem;text-align:left}
.filters label{margin-right:1rem;white-space:nowrap}.hide-t{background:none!important}
.hide-t small{display:none}.meta{color:#555;font-size:.9rem}
"""

_JS = """
document.querySelectorAll('.filters input').forEach(function(box){
  box.addEventListener('change', function(){
    document.querySelectorAll('mark[data-t="'+box.value+'"]').forEach(function(m){
      m.classList.toggle('hide-t', !box.checked);
    });
  });
});
"""


class ReviewPage:
    """Streams the page: header after all documents are known, so documents go to a
    temporary body file first."""

    def __init__(self, path: Path, title: str) -> None:
        self.path = path
        self.title = title
        self.body_path = path.with_suffix(".body.tmp")
        self.body: TextIO = self.body_path.open("w", encoding="utf-8")
        self.types: Counter[str] = Counter()
        self.recognisers: Counter[str] = Counter()
        self.docs = 0

    def add(self, doc_id: str, text: str, replaced: Iterable[Replaced], label: str = "") -> None:
        self.docs += 1
        out = []
        pos = 0
        for r in replaced:
            self.types[r.entity_type] += 1
            self.recognisers[r.recogniser] += 1
            out.append(html.escape(text[pos : r.start]))
            tip = html.escape(f"{r.entity_type} · {r.recogniser} · score {r.score:.2f}")
            etype = html.escape(r.entity_type)
            shown = html.escape(text[r.start : r.end])
            out.append(f'<mark data-t="{etype}" title="{tip}">{shown}<small>{etype}</small></mark>')
            pos = r.end
        out.append(html.escape(text[pos:]))
        heading = html.escape(doc_id + (f" · {label}" if label else ""))
        self.body.write(f'<h2 id="{html.escape(doc_id)}">{heading}</h2>\n<div class="doc">')
        self.body.write("".join(out))
        self.body.write("</div>\n")

    def close(self) -> None:
        self.body.close()
        rows = "".join(
            f"<tr><td>{html.escape(t)}</td><td>{n}</td></tr>" for t, n in sorted(self.types.items())
        )
        recs = "".join(
            f"<tr><td>{html.escape(t)}</td><td>{n}</td></tr>"
            for t, n in sorted(self.recognisers.items())
        )
        boxes = "".join(
            '<label><input type="checkbox" value="{0}" checked> {0}</label>'.format(html.escape(t))
            for t in sorted(self.types)
        )
        with self.path.open("w", encoding="utf-8") as out:
            out.write(
                '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>"
                f'<p class="meta">{self.docs} document(s), {sum(self.types.values())} '
                "replacement(s). Check every highlight and look for identifiers that were "
                "missed before the data is shared. The key is not needed and not shown.</p>"
                "<table><tr><th>entity type</th><th>replacements</th></tr>"
                f"{rows}</table><table><tr><th>recogniser</th><th>replacements</th></tr>{recs}"
                f'</table><p class="filters">Show: {boxes}</p>'
            )
            with self.body_path.open(encoding="utf-8") as body:
                while chunk := body.read(1 << 20):
                    out.write(chunk)
            out.write(f"<script>{_JS}</script></body></html>\n")
        self.body_path.unlink()
