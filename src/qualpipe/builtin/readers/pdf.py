"""PDF transcripts: the text layer of every page (pypdf).

Pages are joined with a blank line (``"\\n\\n"``); within a page the lines are as pypdf
extracts them. A PDF encrypted only with an owner password (printing or copying
restricted) opens with the empty user password; one that needs a password to open is
quarantined, as are scanned PDFs without a text layer (run OCR first) and corrupt or
truncated files. pypdf's own warnings are kept out of the logs (they can quote the
document); the document's notes say how many problems pypdf worked around and which
pages had no text.
"""

from __future__ import annotations

import io
import logging
import unicodedata
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qualpipe.readers import MissingDependency, RawDocument, Reader, UnreadableFile, require
from qualpipe.transcripts import normalise

PDF_CORRUPT = "not a valid PDF (corrupt or truncated)"
PDF_PASSWORD = "password-protected PDF; remove the password or export the text"
PDF_NO_TEXT = "no text layer (scanned image?); run OCR first"
PDF_AES = "needs cryptography to open this AES-encrypted PDF: pip install cryptography"


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@contextmanager
def _quiet_pypdf() -> Iterator[_Count]:
    """Count pypdf's log warnings instead of passing them on; silence its warnings."""
    logger = logging.getLogger("pypdf")
    handler = _Count()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _garbled(text: str) -> bool:
    """Mostly control, private-use or replacement characters: fonts without a Unicode map."""
    sample = [ch for ch in text[:20000] if not ch.isspace()]
    if not sample:
        return False
    bad = sum(
        1 for ch in sample if ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Co", "Cn")
    )
    return bad * 10 > len(sample)


def _pages(pypdf: Any, data: bytes) -> tuple[list[str], int]:
    """Each page's text, and how many problems pypdf reported while reading."""
    with _quiet_pypdf() as problems:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
            encrypted = reader.is_encrypted
        except pypdf.errors.DependencyError:
            raise MissingDependency(PDF_AES) from None
        except Exception:
            raise UnreadableFile(PDF_CORRUPT) from None
        if encrypted:
            try:
                opened = reader.decrypt("")
            except pypdf.errors.DependencyError:
                raise MissingDependency(PDF_AES) from None
            except Exception:
                raise UnreadableFile(PDF_PASSWORD) from None
            if not opened:
                raise UnreadableFile(PDF_PASSWORD)
        try:
            pages = list(reader.pages)
        except Exception:
            raise UnreadableFile(PDF_CORRUPT) from None
        texts: list[str] = []
        for number, page in enumerate(pages, 1):
            try:
                texts.append(page.extract_text() or "")
            except pypdf.errors.DependencyError:
                raise MissingDependency(PDF_AES) from None
            except Exception as exc:
                raise UnreadableFile(
                    f"page {number} could not be read ({type(exc).__name__}); the PDF may be "
                    "corrupt"
                ) from None
    return texts, problems.count


def read_pdf(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    pypdf = require("pypdf", "pdf")
    data = path.read_bytes()
    # A PDF starts with %PDF- (some writers put junk before it) and ends with %%EOF;
    # without the end marker the file is truncated and pages may be missing.
    if b"%PDF-" not in data[:1024] or b"%%EOF" not in data[-2048:]:
        raise UnreadableFile(PDF_CORRUPT)
    texts, problems = _pages(pypdf, data)
    if not texts:
        raise UnreadableFile(PDF_CORRUPT)
    kept = [normalise(t).strip("\n").rstrip() for t in texts]
    if not any(t.strip() for t in kept):
        if problems:
            raise UnreadableFile(
                f"no text extracted and the file has {problems} defect(s): the PDF looks "
                "damaged (re-export it) or is scanned (run OCR)"
            )
        raise UnreadableFile(PDF_NO_TEXT)
    notes: list[str] = []
    blank = [str(i) for i, t in enumerate(kept, 1) if not t.strip()]
    if blank:
        notes.append(
            f"page(s) {', '.join(blank[:20])}{' ...' if len(blank) > 20 else ''} have no text "
            "layer (blank or scanned); their content is missing"
        )
    text = "\n\n".join(t for t in kept if t.strip())
    if _garbled(text):
        notes.append("the text layer looks garbled (fonts without a Unicode map); check it or OCR")
    if problems:
        notes.append(f"{problems} defect(s) in the file were worked around; check the text")
    yield RawDocument(text=text, notes=notes)


PDF = Reader(
    "pdf",
    (".pdf",),
    read_pdf,
    "PDF text layer, pages joined by a blank line; encrypted and scanned PDFs quarantined",
)
