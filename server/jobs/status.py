"""Pure rules of a job's life: its states and what happens at a claim, a cancel or a failure.

No I/O here (tests/geometry/test_imports.py checks): ``server.jobs.queue`` applies these
decisions to the ``jobs`` table.

::

    queued --claim--> running --finish--> done | failed | cancelled
      |                  |  \\--lease ran out--> (claimed again: attempts + 1)
      \\--cancel--> cancelled  \\--worker stopped politely--> queued
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ACTIVE", "FINAL", "MAX_ATTEMPTS", "Cancel", "Claim", "Status", "on_cancel", "on_claim"]


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = frozenset({Status.QUEUED, Status.RUNNING})
FINAL = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})

#: Claims of one job (the first run plus runs after a worker vanished) before it is given up:
#: a job that kills every worker that runs it must not go round the workers forever.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Claim:
    """What a worker does with a job it has just claimed: ``run`` it, or record ``final``."""

    run: bool
    final: Status | None = None
    error: str | None = None


def on_claim(attempts: int, cancel_requested: bool, max_attempts: int = MAX_ATTEMPTS) -> Claim:
    """Decide on a claimed job; ``attempts`` counts this claim."""
    if cancel_requested:  # cancelled while its worker was gone: nothing more to run
        return Claim(run=False, final=Status.CANCELLED)
    if attempts > max_attempts:
        return Claim(run=False, final=Status.FAILED,
                     error=f"gave up after {max_attempts} attempts (workers stopped mid-job)")
    return Claim(run=True)


@dataclass(frozen=True)
class Cancel:
    """The effect of a cancel request: the new status now (a queued job ends at once), or just
    the flag (a running job's worker stops it at its next progress report or heartbeat)."""

    status: Status | None
    flag: bool


def on_cancel(status: Status) -> Cancel | None:
    """``None``: the job has already ended and cancelling changes nothing."""
    if status == Status.QUEUED:
        return Cancel(status=Status.CANCELLED, flag=True)
    if status == Status.RUNNING:
        return Cancel(status=None, flag=True)
    return None
