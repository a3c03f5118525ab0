"""``labelhub db repair-text``: clean text stored before the Unicode checks at the edge.

Older versions let in lone surrogates (``"\\udc00"``: legal JSON, no Unicode character) and
control characters in names (F9, F14 in docs/security.md). One such value makes every later
read of it fail (the audit log answered 500 and the JSON export stopped mid-stream, forever).
This finds and fixes them:

* **Lone surrogates** become U+FFFD (the replacement character) and NUL characters go, in every
  JSON column (object attributes, the op log, settings, job parameters and results, models,
  predictions) and every text column. On SQLite they can only sit inside JSON (stored as
  ``\\udc00`` escapes: the driver cannot write one into a text column); PostgreSQL's ``jsonb``
  and ``text`` refuse both outright, so there the JSON scan is skipped.
* **Control characters in names** (C0/C1 controls, DEL, line and paragraph separators) become a
  space, runs of spaces one, ends trimmed — the rules the edge applies now: user, project, image,
  API-token, model and invitation names. A label's name is changed the way a manager renames it:
  its objects follow and a ``rename_label`` row (origin ``repair``, no inverse: no undo brings
  the bad name back) goes into the project's op log, so open tools hear of it. A cleaned label name already taken gets `` (2)``, …

Why a command and not migration 0012: the schema does not change; the scan reads every JSON
row (the op log is the biggest table), which should not hold up ``db upgrade``; it can run
again at any time (a restored backup, data imported by an older server) and ``--dry-run``
reports first. Each table is read in primary-key batches, one transaction per batch; the
object rows and the op-log rows are cleaned by the same function, so replaying the log still
gives the stored state. Run it with the servers stopped or running: each batch re-reads its
rows in its own transaction.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, String, Text, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.schema import Column, Table

from server._oplog import PendingOp, append_ops
from server.db import transaction
from server.models import Base, LabelDef, LabelObjectRow

__all__ = ["NAME_COLUMNS", "Report", "clean_json", "clean_name", "clean_text", "repair_text"]

BATCH = 500
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = "\x00"
#: Single-line names: control characters are not allowed in them any more.
NAME_COLUMNS = frozenset({("users", "name"), ("projects", "name"), ("images", "name"),
                          ("api_tokens", "name"), ("ai_models", "name"), ("invitations", "name")})
#: Label names: renamed through the op log (``_repair_labels``), not in place.
LABEL_COLUMNS = frozenset({("label_defs", "name"), ("label_objects", "label")})
#: Hashes and generated keys: written by the server only.
SKIP_COLUMNS = frozenset({("users", "password_hash"), ("api_tokens", "token_hash"),
                          ("invitations", "token_hash")})


def clean_text(value: str) -> str:
    """Lone surrogates to U+FFFD, NUL removed; anything else unchanged."""
    if _NUL in value:
        value = value.replace(_NUL, "")
    return _SURROGATE.sub("\ufffd", value)


def _control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def clean_name(value: str, fallback: str = "unnamed") -> str:
    """:func:`clean_text`, then control characters to spaces, runs of spaces to one, trimmed;
    ``fallback`` when nothing is left."""
    text = clean_text(value)
    if any(_control(ch) for ch in text):
        text = " ".join("".join(" " if _control(ch) else ch for ch in text).split())
    return text.strip() or fallback


def clean_json(value: Any) -> Any:
    """``value`` with every string (keys included) passed through :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    return value


@dataclass
class Report:
    """What was (or, with ``dry_run``, would be) changed: ``table.column`` -> rows."""

    dry_run: bool
    fixed: Counter[str] = field(default_factory=Counter)
    renamed_labels: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.fixed.values())

    def lines(self) -> list[str]:
        verb = "would fix" if self.dry_run else "fixed"
        out = [f"{verb} {n} row(s) in {where}" for where, n in sorted(self.fixed.items())]
        out += [f"{'would rename' if self.dry_run else 'renamed'} label {old!r} to {new!r} "
                f"in project {project}" for project, old, new in self.renamed_labels]
        return out or ["no bad text found"]


async def repair_text(sessions: async_sessionmaker[AsyncSession], *, dry_run: bool = False,
                      json_columns: bool = True) -> Report:
    """Find and fix bad text everywhere (see the module's docstring). ``json_columns=False``
    skips the JSON scan (PostgreSQL cannot hold what it looks for)."""
    report = Report(dry_run)
    await _repair_labels(sessions, report)
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if _wanted(table, c, json_columns)]
        if columns:
            await _repair_table(sessions, table, columns, report)
    return report


def _wanted(table: Table, column: Column[Any], json_columns: bool) -> bool:
    key = (table.name, column.name)
    if key in SKIP_COLUMNS or key in LABEL_COLUMNS:
        return False
    if isinstance(column.type, JSON):
        return json_columns
    return isinstance(column.type, String | Text)


def _clean(table: Table, column: Column[Any], value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column.type, JSON):
        return clean_json(value)
    if (table.name, column.name) in NAME_COLUMNS:
        return clean_name(value)
    return clean_text(value)


async def _repair_table(sessions: async_sessionmaker[AsyncSession], table: Table,
                        columns: list[Column[Any]], report: Report) -> None:
    keys = list(table.primary_key.columns)
    after: tuple[Any, ...] | None = None
    while True:
        async with transaction(sessions) as session:
            stmt = select(*keys, *columns).order_by(*keys).limit(BATCH)
            if after is not None:
                stmt = stmt.where(tuple_(*keys) > tuple_(*after))
            rows = (await session.execute(stmt)).all()
            for row in rows:
                key, values = tuple(row[: len(keys)]), row[len(keys):]
                changes = {}
                for column, value in zip(columns, values, strict=True):
                    cleaned = _clean(table, column, value)
                    if cleaned != value:
                        changes[column.name] = cleaned
                        report.fixed[f"{table.name}.{column.name}"] += 1
                if changes and not report.dry_run:
                    where = [k == v for k, v in zip(keys, key, strict=True)]
                    await session.execute(update(table).where(*where).values(**changes))
        if len(rows) < BATCH:
            return
        after = tuple(rows[-1][: len(keys)])


async def _repair_labels(sessions: async_sessionmaker[AsyncSession], report: Report) -> None:
    """Rename each bad label name (a label definition's or an object's) as a manager would."""
    async with transaction(sessions) as session:
        pairs = set((await session.execute(select(LabelDef.project_id, LabelDef.name))).all())
        pairs |= set((await session.execute(
            select(LabelObjectRow.project_id, LabelObjectRow.label).distinct())).all())
    bad = sorted((p, n) for p, n in pairs if n and clean_name(n, "label") != n)
    for project_id, old in bad:
        async with transaction(sessions) as session:
            taken = set((await session.execute(select(LabelDef.name).where(
                LabelDef.project_id == project_id))).scalars())
            taken |= set((await session.execute(select(LabelObjectRow.label).where(
                LabelObjectRow.project_id == project_id).distinct())).scalars())
            new = base = clean_name(old, "label")
            n = 1
            while new in taken:
                n += 1
                new = f"{base} ({n})"
            report.renamed_labels.append((project_id, old, new))
            report.fixed["label names"] += 1
            if report.dry_run:
                continue
            await session.execute(update(LabelObjectRow).where(
                LabelObjectRow.project_id == project_id, LabelObjectRow.label == old)
                .values(label=new))
            await session.execute(update(LabelDef).where(
                LabelDef.project_id == project_id, LabelDef.name == old).values(name=new))
            # No inverse: nobody's undo may bring the bad name back.
            op = {"kind": "rename_label", "from": old, "to": new}
            await append_ops(session, project_id, None,
                             [PendingOp(None, "rename_label", op, None)], "repair")
