"""Labeling-time accounting — pure. Active time is the sum of gaps between activity, where a gap
longer than the idle limit counts as nothing (the labeler walked away)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime


@dataclass(frozen=True)
class Span:
    started_at: datetime
    last_activity_at: datetime
    active_seconds: float = 0.0


def start(now: datetime) -> Span:
    return Span(started_at=now, last_activity_at=now)


def touch(span: Span, now: datetime, idle_limit: float) -> Span:
    """Record activity at ``now``."""
    gap = (now - span.last_activity_at).total_seconds()
    if gap <= 0:
        return span
    counted = gap if gap <= idle_limit else 0.0
    return replace(span, last_activity_at=now, active_seconds=span.active_seconds + counted)


def finish(span: Span, now: datetime, idle_limit: float) -> Span:
    """Close at ``now`` (release) — the tail since the last activity counts like any gap."""
    return touch(span, now, idle_limit)
