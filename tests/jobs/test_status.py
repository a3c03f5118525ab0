"""The pure rules of a job's life."""

from __future__ import annotations

from server.jobs.status import (
    ACTIVE,
    FINAL,
    MAX_ATTEMPTS,
    Cancel,
    Claim,
    Status,
    on_cancel,
    on_claim,
)


def test_statuses_split_into_active_and_final() -> None:
    assert ACTIVE | FINAL == set(Status) and not ACTIVE & FINAL
    assert [str(s) for s in Status] == ["queued", "running", "done", "failed", "cancelled"]


def test_a_claimed_job_runs_unless_cancelled_or_out_of_attempts() -> None:
    assert on_claim(1, False) == Claim(run=True)
    assert on_claim(MAX_ATTEMPTS, False) == Claim(run=True)
    assert on_claim(2, True) == Claim(run=False, final=Status.CANCELLED)
    gave_up = on_claim(MAX_ATTEMPTS + 1, False)
    assert not gave_up.run and gave_up.final == Status.FAILED
    assert gave_up.error is not None and str(MAX_ATTEMPTS) in gave_up.error
    assert on_claim(3, False, max_attempts=2).final == Status.FAILED


def test_cancel_ends_a_queued_job_flags_a_running_one_and_leaves_ended_ones() -> None:
    assert on_cancel(Status.QUEUED) == Cancel(status=Status.CANCELLED, flag=True)
    assert on_cancel(Status.RUNNING) == Cancel(status=None, flag=True)
    for status in FINAL:
        assert on_cancel(status) is None
