"""Recognising an attachment by its content, and getting its text out.

The kind comes from the bytes, not the name: `%PDF-` is a PDF, a zip holding
`word/document.xml` is a .docx, UTF-8 (or UTF-16 with a BOM) text is .txt, .md, .json or .csv
by its name (.json must parse, .csv must read as CSV). A name that promises a PDF or .docx
over other content, an OLE container (how Office stores encrypted documents, and legacy .doc),
other binary data, an encrypted PDF that does not open with the empty password, and a file
whose parser fails are all refused with a 422 saying which.

Libraries, and why:
- pypdf: pure Python (no native code or subprocess to sandbox), maintained, reads encrypted
  PDFs' flags (and decrypts owner-password-only ones, as every viewer does), and caps the
  output of compressed streams (decompression bombs end in `LimitReachedError`).
- python-docx: the maintained reader of WordprocessingML; it parses with lxml with entity
  resolution off (no XML entity expansion), runs no macros, and gives paragraphs and tables.
  Before it sees a file, the zip's declared member sizes are held to a cap here, so a small
  .docx cannot unpack to gigabytes.

Extraction stops after `max_chars` characters: the context keeps only the first
INFERENCE_ATTACHMENT_MAX_TOKENS tokens, and reading past what could ever be kept would only
cost time (the attachment is then marked truncated). These functions block; call them in a
worker thread.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from services.inference.models import AttachmentKind
from shared.errors import UnprocessableEntity

SNIFF_BYTES = 8192
# What a .docx may unpack to (its zip's declared sizes), whatever its compressed size.
MAX_DOCX_UNPACKED = 256 << 20
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TEXT_KINDS = {
    ".md": AttachmentKind.MD,
    ".markdown": AttachmentKind.MD,
    ".json": AttachmentKind.JSON,
    ".csv": AttachmentKind.CSV,
}
ACCEPTED = ".txt, .md, .json, .csv, .docx and .pdf"


class UnknownFileType(UnprocessableEntity):
    code = "unknown_file_type"


class EncryptedFile(UnprocessableEntity):
    code = "encrypted_file"


class CorruptFile(UnprocessableEntity):
    code = "corrupt_file"


class NoText(UnprocessableEntity):
    code = "no_text"


@dataclass(frozen=True, slots=True)
class Extracted:
    kind: AttachmentKind
    text: str
    cut: bool  # extraction stopped at max_chars


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


def extract(path: Path, filename: str, max_chars: int) -> Extracted:
    """The kind and text of the file at `path` (named `filename` by its uploader)."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    suffix = _suffix(filename)
    if not head:
        raise NoText(f"'{filename}' is empty.")
    if b"%PDF-" in head[:1024]:
        return _pdf(path, filename, max_chars)
    if head.startswith(b"PK\x03\x04"):
        return _docx(path, filename, max_chars)
    if head.startswith(_CFB_MAGIC):
        if suffix in {".docx", ".doc"}:
            raise EncryptedFile(
                f"'{filename}' is an OLE container: a password-protected (encrypted) Word "
                "document, or a legacy .doc. Remove the password and save it as .docx."
            )
        raise UnknownFileType(
            f"'{filename}' is an OLE container (a legacy or encrypted Office file); accepted "
            f"are {ACCEPTED}."
        )
    if suffix in {".pdf", ".docx"}:
        raise UnknownFileType(
            f"'{filename}' is named {suffix} but its content is not a {suffix[1:].upper()} "
            "file; upload the real file."
        )
    return _text(path, filename, suffix, max_chars)


# ---- PDF ------------------------------------------------------------------------------------


def _pdf(path: Path, filename: str, max_chars: int) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            # Only an owner password (permissions) opens with the empty user password.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise EncryptedFile(
                    f"'{filename}' is an encrypted PDF we cannot open ({exc}); save an "
                    "unencrypted copy and upload that."
                ) from exc
            if not opened:
                raise EncryptedFile(
                    f"'{filename}' is a password-protected PDF; remove the password (save an "
                    "unencrypted copy) and upload that."
                )
        pages: list[str] = []
        size = 0
        cut = False
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text)
            size += len(text) + 2
            if size > max_chars:
                cut = True
                break
    except FileNotDecryptedError as exc:
        raise EncryptedFile(
            f"'{filename}' is a password-protected PDF; remove the password and upload it again."
        ) from exc
    except UnprocessableEntity:
        raise
    except (PyPdfError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise CorruptFile(f"'{filename}' is a damaged PDF that cannot be read: {exc}") from exc
    except RecursionError as exc:
        raise CorruptFile(f"'{filename}' is a PDF nested too deeply to read.") from exc
    return Extracted(AttachmentKind.PDF, _nonempty(filename, "\n\n".join(pages), max_chars), cut)


# ---- .docx ----------------------------------------------------------------------------------


def _docx(path: Path, filename: str, max_chars: int) -> Extracted:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if any(info.flag_bits & 0x1 for info in archive.infolist()):
                raise EncryptedFile(f"'{filename}' is an encrypted archive.")
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise CorruptFile(f"'{filename}' is a damaged zip / .docx file: {exc}") from exc
    if "word/document.xml" not in names:
        raise UnknownFileType(
            f"'{filename}' is a zip archive, not a Word document; accepted are {ACCEPTED} "
            "(upload the files inside the archive one by one)."
        )
    if unpacked > MAX_DOCX_UNPACKED:
        raise CorruptFile(
            f"'{filename}' unpacks to {unpacked} bytes, more than the {MAX_DOCX_UNPACKED} a "
            "document may."
        )
    try:
        document = docx.Document(str(path))
        parts: list[str] = []
        size = 0
        cut = False
        for block in _blocks(document):
            parts.append(block)
            size += len(block) + 1
            if size > max_chars:
                cut = True
                break
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CorruptFile(f"'{filename}' is a damaged Word document: {exc}") from exc
    except SyntaxError as exc:  # lxml's XMLSyntaxError
        raise CorruptFile(f"'{filename}' holds malformed XML: {exc}") from exc
    return Extracted(AttachmentKind.DOCX, _nonempty(filename, "\n".join(parts), max_chars), cut)


def _blocks(document: object) -> list[str]:
    """Paragraphs, then each table row as tab-separated cells."""
    from docx.document import Document

    assert isinstance(document, Document)
    blocks = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            blocks.append("\t".join(cell.text for cell in row.cells))
    return blocks


# ---- text -----------------------------------------------------------------------------------


def _decode(raw: bytes, filename: str) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnknownFileType(
            f"'{filename}' is neither text (UTF-8) nor a PDF or Word document; accepted are "
            f"{ACCEPTED}."
        ) from exc
    if "\x00" in text:
        raise UnknownFileType(
            f"'{filename}' holds binary data (NUL bytes), not text; accepted are {ACCEPTED}."
        )
    return text


def _text(path: Path, filename: str, suffix: str, max_chars: int) -> Extracted:
    text = _decode(path.read_bytes(), filename)
    kind = _TEXT_KINDS.get(suffix, AttachmentKind.TXT)
    if kind == AttachmentKind.JSON:
        try:
            json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise CorruptFile(f"'{filename}' is not valid JSON: {exc}") from exc
    elif kind == AttachmentKind.CSV:
        try:
            for _ in csv.reader(io.StringIO(text, newline="")):
                pass
        except csv.Error as exc:
            raise CorruptFile(f"'{filename}' is not valid CSV: {exc}") from exc
    return Extracted(kind, _nonempty(filename, text[:max_chars], max_chars), len(text) > max_chars)


def _nonempty(filename: str, text: str, max_chars: int) -> str:
    text = text.replace("\x00", "")[:max_chars]
    if not text.strip():
        raise NoText(
            f"No text could be read from '{filename}' (a scanned PDF holds images of text, "
            "which are not read)."
        )
    return text
