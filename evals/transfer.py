"""Cases from CSV and JSONL files, and back: bounded in size and rows, all or nothing.

A file is read whole before anything is stored: every row is checked and every bad row reported
(``ImportRefused``, its line number and what is wrong), so a file with one bad row stores none.

Columns (CSV) or keys (JSONL): ``input`` (the message) or ``inputs`` (a JSON object),
``expected_output``, ``criteria``, ``expected_sources`` and ``tags`` (in CSV, items separated
by ``|``; in JSONL, lists).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from evals.models import Case
from evals.schemas import CaseData

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_ROWS = 2_000
MAX_ERRORS_SHOWN = 20
LIST_SEPARATOR = "|"
COLUMNS = ["input", "inputs", "expected_output", "criteria", "expected_sources", "tags"]


class ImportRefused(Exception):
    """The file was refused; ``errors`` says why, row by row."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _row_case(row: dict[str, Any], *, from_csv: bool) -> CaseData:
    row = {k.strip().lower(): v for k, v in row.items() if k is not None}
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown column {sorted(unknown)[0]!r}")
    inputs = row.get("inputs") or {}
    if from_csv and isinstance(inputs, str):
        inputs = json.loads(inputs)  # ValueError says where
    if not isinstance(inputs, dict):
        raise ValueError("inputs must be a JSON object")
    if row.get("input"):
        inputs = {"message": row["input"], **inputs}
    values: dict[str, Any] = {"inputs": inputs}
    for name in ("expected_output", "criteria"):
        if row.get(name):
            values[name] = row[name]
    for name in ("expected_sources", "tags"):
        value = row.get(name)
        if from_csv and isinstance(value, str):
            value = value.split(LIST_SEPARATOR)
        if value:
            values[name] = value
    return CaseData.model_validate(values)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc)


def _rows(name: str, text: str) -> Iterable[tuple[int, dict[str, Any] | None, str]]:
    """(line, row, problem) for each row of the file."""
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            return
        for row in reader:
            if None in row:
                yield reader.line_num, None, "more values than columns"
            else:
                yield reader.line_num, row, ""
        return
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError as exc:
            yield line, None, f"not JSON: {exc}"
            continue
        yield (line, row, "") if isinstance(row, dict) else (line, None, "not a JSON object")


def too_big() -> str:
    return f"The file is larger than {MAX_FILE_BYTES // 1024 // 1024} MB."


def cases_parse(name: str, data: bytes) -> list[CaseData]:
    """The cases of a ``.csv`` or ``.jsonl`` file; ImportRefused lists every problem."""
    if not name.lower().endswith((".csv", ".jsonl")):
        raise ImportRefused(["Choose a .csv or .jsonl file."])
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused([too_big()])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(["The file is not UTF-8 text."]) from None
    cases: list[CaseData] = []
    errors: list[str] = []
    try:
        for line, row, problem in _rows(name, text):
            if len(cases) + len(errors) >= MAX_ROWS:
                raise ImportRefused([f"The file has more than {MAX_ROWS} rows: split it."])
            if row is not None:
                try:
                    cases.append(_row_case(row, from_csv=name.lower().endswith(".csv")))
                    continue
                except (ValueError, ValidationError) as exc:
                    problem = _problem(exc)
            errors.append(f"Line {line}: {problem}")
    except csv.Error as exc:
        errors.append(f"The CSV cannot be read: {exc}")
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > len(shown):
            shown.append(f"… and {len(errors) - len(shown)} more rows with problems.")
        raise ImportRefused(shown)
    if not cases:
        raise ImportRefused(["The file holds no cases."])
    return cases


def case_data(case: Case) -> CaseData:
    return CaseData(
        inputs=case.inputs,
        expected_output=case.expected_output,
        criteria=case.criteria,
        expected_sources=case.expected_sources,
        tags=case.tags,
    )


def cases_jsonl(cases: Iterable[Case]) -> str:
    return "".join(case_data(c).model_dump_json() + "\n" for c in cases)


def cases_csv(cases: Iterable[Case]) -> str:
    """CSV that ``cases_parse`` reads back: ``inputs`` as JSON, lists joined by ``|``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["inputs", "expected_output", "criteria", "expected_sources", "tags"])
    for case in cases:
        writer.writerow(
            [
                json.dumps(case.inputs, ensure_ascii=False),
                case.expected_output,
                case.criteria,
                LIST_SEPARATOR.join(case.expected_sources),
                LIST_SEPARATOR.join(case.tags),
            ]
        )
    return out.getvalue()
