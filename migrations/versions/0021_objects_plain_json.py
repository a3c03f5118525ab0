"""objects' geometry, keypoints, attributes and rpy as plain json (PostgreSQL)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 05:00:00

Nothing queries inside an object's JSON values in SQL: the server reads them whole, as text to
splice into a snapshot or an export, or decoded by the driver, and writes them whole. As
``jsonb`` each value was parsed into jsonb's binary form on the way in and printed back to text
on the way out, the largest part of both a big batch's insert and a snapshot's aggregation.
``json`` keeps the text the server wrote (validated JSON, not converted). Measured on scratch
copies of the table (docs/performance.md, "Ninth session"): 5,000 boxes inserted in 78 ms
instead of 90 (two indexes each), and 10,000 aggregated into a snapshot's array in 37 ms instead
of 68.

json has no equality operator; nothing compares these columns (a snapshot tests a stored JSON
``null`` through its text). labelhub_op_read and labelhub_op_begin return the columns as they
are (0018's definitions with json result columns; a function's result type cannot be replaced,
so they are dropped and created again), and labelhub_op_write takes the inserted and updated
values as json (0019's definition, with json in place of jsonb for these four). SQLite: nothing
changes (JSON is text there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from alembic import op

from migrations._previous import previous

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("geometry", "keypoints", "attributes", "rpy")
_READ_ARGS = "(integer, integer, integer, varchar, varchar[])"


def _retyped(sql: str, pattern: str, to: str, count: int) -> str:
    """``sql`` with each match of ``pattern`` (one group: the column) typed ``to``; exactly
    ``count`` of them, so a definition that changed under this migration fails loudly."""
    new, made = re.subn(pattern, lambda m: f"{m.group(1)}{to}", sql)
    assert made == count, (pattern, made)
    return new


def _functions(to: str) -> tuple[str, str, str]:
    """(read, begin, write) with the object columns' values typed ``to`` (json or jsonb)."""
    first, second = previous("0018_object_sources_on_edits.py"), \
        previous("0019_op_log_plain_json.py")
    results = r"(o_(?:geometry|keypoints|attributes|rpy)) jsonb"
    read = _retyped(first.READ_FUNCTION, results, f" {to}", 4)
    # The context row's empty object columns.
    read = _retyped(read, r"(NULL::varchar, NULL::varchar, NULL::varchar, )NULL::jsonb, "
                          r"NULL::jsonb, NULL::jsonb,\s+NULL::jsonb",
                    f"NULL::{to}, NULL::{to}, NULL::{to}, NULL::{to}", 1)
    begin = _retyped(first.BEGIN_FUNCTION, results, f" {to}", 4)
    write = _retyped(second.WRITE_FUNCTION, r"\b((?:geometry|keypoints|attributes|rpy)) jsonb",
                     f" {to}", 4)
    write = _retyped(write, r"(i\.(?:geometry|keypoints|attributes|rpy))::jsonb", f"::{to}", 4)
    return read, begin, write


def _switch(to: str) -> None:
    read, begin, write = _functions(to)
    op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_read{_READ_ARGS}")
    op.execute(f"DROP FUNCTION IF EXISTS labelhub_op_begin{_READ_ARGS}")
    op.execute("ALTER TABLE objects " + ", ".join(
        f"ALTER COLUMN {c} TYPE {to} USING {c}::{to}" for c in _COLUMNS))
    op.execute(read)
    op.execute(begin)
    op.execute(write)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _switch("json")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _switch("jsonb")
