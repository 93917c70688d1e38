"""Spreadsheet cells that cannot run (OWASP "CSV injection").

Our CSV reports are meant to be opened in Excel or WPS, and some cells come from outside (unit names and
addresses from imported unit lists). A cell starting with = + - @ (or a tab or carriage return, which
spreadsheets skip before looking for one of those) is read as a formula: `=cmd|' /C calc'!A0`. OWASP's
advice is to prefix such a cell with a single quote, which makes the spreadsheet show it as text. Every CSV
or XLSX export writes its rows through :func:`safe_row`.
"""

from __future__ import annotations

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    """``value`` unchanged unless it is text a spreadsheet would take for a formula; then quoted as text.

    Numbers stay numbers (a negative number is not text, and the csv module writes it as such)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    return [safe_cell(v) for v in values]
