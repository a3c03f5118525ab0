"""server/_edit_lease.py: the fencing-token check, and the resolution at which an edit records
activity. ``TOUCH_RESOLUTION`` is read where it lives by both its readers (the labeling session's
activity here, "last labeled" in ``server.edits.labeled_values``), so patching it there, as
tests/hub/test_fast_op.py does, widens both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from server import _edit_lease
from server._edit_lease import OpenSpan, check_lease, touched
from server.edits import EditError, ImageRef, labeled_values
from server.hub import timing

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _span(last: datetime) -> OpenSpan:
    return OpenSpan(7, timing.Span(T0, last, 3.0))


def _image(labeled_at: datetime) -> ImageRef:
    return ImageRef(id=1, project_id=1, width=10, height=10, object_count=2, labeled_by=5,
                    labeled_at=labeled_at)


def test_activity_within_the_resolution_is_not_written() -> None:
    half = T0 + timedelta(seconds=_edit_lease.TOUCH_RESOLUTION / 2)
    assert touched(_span(T0), half, idle_limit=120.0) is None
    assert labeled_values(_image(T0), 2, 5, half) == {}
    later = T0 + timedelta(seconds=_edit_lease.TOUCH_RESOLUTION * 2)
    span = touched(_span(T0), later, idle_limit=120.0)
    assert span is not None and span.last_activity_at == later
    assert labeled_values(_image(T0), 2, 5, later) == {"labeled_at": later, "labeled_by": 5}
    assert touched(None, later, idle_limit=120.0) is None


def test_patching_the_resolution_reaches_both_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    later = T0 + timedelta(seconds=30)
    monkeypatch.setattr(_edit_lease, "TOUCH_RESOLUTION", 3600.0)
    assert touched(_span(T0), later, idle_limit=120.0) is None
    assert labeled_values(_image(T0), 2, 5, later) == {}
    # Another user's edit, or a count that changed, is written whatever the resolution.
    assert labeled_values(_image(T0), 2, 6, later) == {"labeled_at": later, "labeled_by": 6}
    assert labeled_values(_image(T0), 1, 5, later) == {"object_count": 2}


def _lease(holder: int | None, token: int | None, expires: datetime | None,
           span_id: int | None = None) -> SimpleNamespace:
    return SimpleNamespace(holder_id=holder, connection_id="c", token=token, expires_at=expires,
                           span_id=span_id, started_at=T0, last_activity_at=T0,
                           active_seconds=None)


def test_check_lease() -> None:
    now = T0 + timedelta(seconds=5)
    live = T0 + timedelta(seconds=45)
    assert check_lease(_lease(5, 3, live), 5, 3, now) is None  # no open labeling session
    opened = check_lease(_lease(5, 3, live, span_id=9), 5, 3, now)
    assert opened == OpenSpan(9, timing.Span(T0, T0, 0.0))
    for row, user, token, code in ((None, 5, 3, "no_lock"),
                                   (_lease(None, None, None), 5, 3, "no_lock"),
                                   (_lease(5, 3, live), 6, 3, "no_lock"),
                                   (_lease(5, 3, live), 5, 2, "stale_token"),
                                   (_lease(5, 3, T0), 5, 3, "lock_expired")):
        with pytest.raises(EditError) as refused:
            check_lease(row, user, token, now)
        assert refused.value.code == code
