"""CSV reports for people (opened in Excel or WPS): written atomically, every cell neutralised."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pki.cells import safe_row
from pki.files import atomic_text


class CsvReport:
    """Rows go through :func:`pki.cells.safe_row`: no cell a spreadsheet would run as a formula."""

    def __init__(self, stream: IO[str]) -> None:
        self._writer = csv.writer(stream)

    def row(self, values: Iterable[object]) -> None:
        self._writer.writerow(safe_row(values))


@contextmanager
def csv_report(path: Path, header: Iterable[str]) -> Iterator[CsvReport]:
    """A report at ``path`` (UTF-8 with a BOM, so that Excel reads the Chinese right), replacing any old one
    only when the block completes: a failed or killed run leaves the previous report whole."""
    with atomic_text(path, encoding="utf-8-sig", newline="") as stream:
        report = CsvReport(stream)
        report.row(header)
        yield report
