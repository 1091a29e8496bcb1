"""Tolerant CSV reading: what staff export from spreadsheets should just work.

Everything is read as text (validation decides what a value means), with UTF-8 (BOM or
not) or a Latin-1 fallback, comma/semicolon/tab delimiters and ragged rows reported,
never silently dropped. Anything that is not a CSV gets one clear :class:`FileError`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.schema import MALFORMED, FileError, check_duplicates, normalise_header

SNIFF_BYTES = 1 << 20
_MAGIC = {
    b"PK\x03\x04": "an Excel workbook or zip archive",
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) workbook",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"%PDF": "a PDF document",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"\x80\x04": "a Python pickle",
    b"\x80\x05": "a Python pickle",
}
csv.field_size_limit(1 << 30)


@dataclass
class CsvFormat:
    """How a file is encoded and delimited, found from its first megabyte."""

    encoding: str
    delimiter: str
    header: list[str] = field(default_factory=list)


def _decode_head(head: bytes) -> tuple[str, str]:
    for enc in ("utf-8-sig",):
        try:
            return head.decode(enc), enc
        except UnicodeDecodeError as err:
            # A multi-byte character cut by the sniff window is still UTF-8.
            if err.start >= len(head) - 4:
                return head[: err.start].decode(enc), enc
    return head.decode("latin-1"), "latin-1"


def sniff(head: bytes) -> CsvFormat:
    """Detect encoding and delimiter, or raise FileError when this is not a CSV at all."""
    if not head.strip():
        raise FileError("The file is empty. Upload a CSV with a header row and one row per applicant.")
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise FileError(f"This looks like {what}, not a CSV. Save or export the sheet as CSV and retry.")
    if b"\x00" in head[:8192]:
        raise FileError("This is not a text CSV file (it contains binary data). Export it as CSV and retry.")
    text, encoding = _decode_head(head)
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    delimiter = max(counts, key=lambda d: counts[d])
    if counts[delimiter] == 0:
        raise FileError(
            "Could not find a comma- or semicolon-separated header row. "
            "The first line must name the columns, e.g. APPLICATION_TYPE,AFFILIATION,..."
        )
    header = [normalise_header(h) for h in next(csv.reader([first], delimiter=delimiter))]
    check_duplicates(header)
    return CsvFormat(encoding, delimiter, header)


def _read_kwargs(fmt: CsvFormat) -> dict:
    return dict(
        sep=fmt.delimiter,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding=fmt.encoding,
        encoding_errors="replace",
        skip_blank_lines=True,
    )


def _frame(chunk: pd.DataFrame) -> pd.DataFrame:
    chunk.columns = [normalise_header(c) for c in chunk.columns]
    return chunk


def _ragged_chunks(
    buf: io.BufferedIOBase, fmt: CsvFormat, chunksize: int, skip: int = 0
) -> Iterator[pd.DataFrame]:
    """Fallback reader for rows with more fields than the header: keeps them, marked.

    ``skip``: data rows already read by the fast reader (counted the way it counts them)."""
    stream = io.TextIOWrapper(buf, encoding=fmt.encoding, errors="replace", newline="")
    reader = csv.reader(stream, delimiter=fmt.delimiter)
    header = [normalise_header(h) for h in next(reader)]
    width = len(header)
    rows: list[list[str]] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if skip:
            skip -= 1
            continue
        marker = str(len(row)) if len(row) > width else ""
        rows.append((row + [""] * width)[:width] + [marker])
        if len(rows) >= chunksize:
            yield pd.DataFrame(rows, columns=header + [MALFORMED], dtype=object)
            rows = []
    if rows:
        yield pd.DataFrame(rows, columns=header + [MALFORMED], dtype=object)


def _open(source: bytes | str | Path) -> tuple[io.BufferedIOBase, bytes]:
    if isinstance(source, bytes | bytearray):
        buf = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.exists():
            raise FileError(f"File not found: {path}")
        if path.is_dir():
            raise FileError(f"{path} is a folder, not a CSV file.")
        buf = open(path, "rb")  # noqa: SIM115 - closed by the caller
    head = buf.read(SNIFF_BYTES)
    buf.seek(0)
    return buf, head


def iter_chunks(source: bytes | str | Path, chunksize: int = 100_000) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield ``(first_line, raw_text_chunk)`` so files of any size use bounded memory.

    Rows with more fields than the header carry their field count in the hidden column
    ``MALFORMED`` so the validator rejects them with a reason instead of pandas dropping them.
    """
    buf, head = _open(source)
    with buf:
        fmt = sniff(head)
        kwargs = _read_kwargs(fmt)
        line = 2
        try:
            reader = pd.read_csv(buf, chunksize=chunksize, **kwargs)
            for chunk in reader:
                yield line, _frame(chunk)
                line += len(chunk)
            if line == 2:
                raise FileError("The file has a header but no applicant rows.")
            return
        except pd.errors.ParserError:
            pass  # a ragged row: the rows from this chunk on are read again by the csv module
        except pd.errors.EmptyDataError:
            raise FileError("The file is empty. Upload a CSV with a header row.") from None
        except UnicodeError:
            raise FileError("The file's text encoding could not be read; save it as UTF-8 CSV.") from None
        # Ragged rows: re-read with the csv module, which keeps and marks them, from the first row the
        # fast reader did not hand out, so every chunk's rows keep their true lines.
        buf.seek(0)
        try:
            for chunk in _ragged_chunks(buf, fmt, chunksize, skip=line - 2):
                yield line, chunk
                line += len(chunk)
        except csv.Error as err:
            raise FileError(f"The file is not a readable CSV after line {line - 1}: {err}.") from None
        if line == 2:  # e.g. an unterminated quote that swallows every row
            raise FileError("The file has a header but no applicant rows that can be read.")


def read_table(source: bytes | str | Path) -> pd.DataFrame:
    """Read a whole CSV as text (ragged rows kept and marked for the validator)."""
    chunks = [c for _, c in iter_chunks(source, chunksize=1_000_000)]
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
