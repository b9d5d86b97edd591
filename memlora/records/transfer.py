"""Export and import of records as JSON lines (one `MemoryRecord` per line, schema version 1).

Export writes records oldest first; import validates every line before storing any (an error
names the line and the field, and the store is left as it was), skips ids already present, and
embeds the texts with the store's own model, so a store can move to another embedding model
by exporting and importing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

from memlora.records.schema import MemoryRecord, RecordValidationError, parse_record_line
from memlora.records.store import RecordFilter, RecordStore

IMPORT_BATCH = 512


@dataclass
class ImportReport:
    read: int = 0
    added: int = 0
    already_present: int = 0


def export_jsonl(store: RecordStore, out: IO[str], scope: RecordFilter = RecordFilter()) -> int:
    written = 0
    for record in store.iterate(scope):
        out.write(record.to_json() + "\n")
        written += 1
    return written


def read_jsonl(lines: Iterable[str], source: str = "input") -> list[MemoryRecord]:
    """Every record of a JSONL text; raises on the first bad line, naming it (blank lines are skipped)."""
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        records.append(parse_record_line(line, where=f"{source}, line {number}"))
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.id in seen and records[seen[record.id]] != record:
            raise RecordValidationError([("id", f"{record.id} is used by two different records")], source)
        seen.setdefault(record.id, index)
    return records


def import_jsonl(store: RecordStore, lines: Iterable[str], source: str = "input",
                 progress: object = None) -> ImportReport:
    """Validates all lines, then stores the new records in batches (each batch one transaction)."""
    records = read_jsonl(lines, source)
    report = ImportReport(read=len(records))
    for start in range(0, len(records), IMPORT_BATCH):
        batch = records[start : start + IMPORT_BATCH]
        added = store.add(batch)
        report.added += sum(added)
        report.already_present += len(added) - sum(added)
        if callable(progress):
            progress(len(batch))
    return report
