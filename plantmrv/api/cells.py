"""Spreadsheet-safe cells for the CSV and xlsx exports.

A spreadsheet runs a cell as a formula (or a DDE command) when its text starts with ``=``,
``+``, ``-`` or ``@``, and some also after a leading tab or carriage return (OWASP "CSV
injection"); Japanese spreadsheets take the full-width ``＝ ＋ － ＠`` too. Every *text* cell of an
export that starts with one of these, or with ``'``, gets a leading ``'``: the cell shows the
text and runs nothing. The rule is reversible: a reader removes one leading ``'`` from a text
cell that has one (docs/verifier.md). Numbers are written as numbers and never touched (``-0.5``
stays a number); live formulas appear only where the export builds them (the xlsx Calculation
sheet), never from data.
"""

from __future__ import annotations

import csv
import io
import math
import re

TRIGGERS = frozenset("=+-@\t\r'\uff1d\uff0b\uff0d\uff20")
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def neutralise(text: str) -> str:
    """Text as a spreadsheet shows it without running it (see the module docstring)."""
    return "'" + text if text and text[0] in TRIGGERS else text


def unneutralise(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def format_number(value: float | int) -> str:
    """Shortest round-trip text of a number: ``repr`` of the float; integers as integers."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return "" if math.isnan(value) else repr(float(value))


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return format_number(value)
    return neutralise(str(value))


def csv_rows(rows) -> str:
    """Rows (lists of text, numbers or None) as RFC 4180 CSV text.

    Lines end with CRLF, as RFC 4180 says: then the csv module quotes a field holding a lone CR
    too (with ``\\n`` line ends it does not, and a spreadsheet would split the row there)."""
    buf = io.StringIO()
    csv_writer(buf).writerows([csv_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def csv_writer(buf):
    return csv.writer(buf, lineterminator="\r\n")


def csv_line(*values) -> str:
    return csv_rows([values])


def xml_text(text: str) -> str:
    """Text for an xlsx inline string: neutralised, characters XML 1.0 forbids replaced by U+FFFD."""
    return _XML_ILLEGAL.sub("\ufffd", neutralise(text))


class Formula(str):
    """A formula the export itself builds (``=SUM(...)``): the only text written as a live formula."""


def xlsx_cells(ws, values, font=None) -> list:
    """openpyxl write-only cells: numbers as numbers, :class:`Formula` as formulas, any other
    text neutralised and forced to the string type (openpyxl would take ``=...`` as a formula)."""
    from openpyxl.cell import WriteOnlyCell

    out = []
    for v in values:
        if isinstance(v, Formula):
            c = WriteOnlyCell(ws, value=str(v))
        elif isinstance(v, str):
            c = WriteOnlyCell(ws, value=None)
            c._value, c.data_type = _XML_ILLEGAL.sub("\ufffd", neutralise(v)), "s"
        elif isinstance(v, float) and not math.isfinite(v):
            c = WriteOnlyCell(ws, value=None)
        else:
            c = WriteOnlyCell(ws, value=v)
        if font is not None:
            c.font = font
        out.append(c)
    return out
