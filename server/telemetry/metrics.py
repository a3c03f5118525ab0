"""The metrics and how they are rendered — no database, no web code.

``prometheus-client`` picks its storage when it is first imported: with ``PROMETHEUS_MULTIPROC_DIR``
set, every process writes its values to files in that directory and ``/metrics`` adds them up
(:func:`render`); without it, values live in this process (tests, an embedded server).
``labelhub serve`` sets the directory for itself and the workers it starts (server/telemetry/_dirs.py).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from server.telemetry._dirs import ENV

__all__ = [
    "CONNECTIONS",
    "CONTENT_TYPE",
    "FANOUT_QUEUE",
    "FANOUT_QUEUE_MAX",
    "GC_PAUSE",
    "JOBS",
    "JOB_SECONDS",
    "LOCKS",
    "LOOP_LAG",
    "OPS",
    "OP_SECONDS",
    "SLOW_DROPPED",
    "mark_dead",
    "multiprocess_dir",
    "observe_job",
    "observe_op",
    "render",
    "slow_client_dropped",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Edit latencies are milliseconds on a healthy server; the top buckets catch a stalled one.
_OP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_STALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
_JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

OPS = Counter("labelhub_ops", "Edits committed to the op log (each op of a batch counts once).")
OP_SECONDS = Histogram("labelhub_op_commit_seconds",
                       "An op message from receipt to its commit and ack.", buckets=_OP_BUCKETS)
SLOW_DROPPED = Counter("labelhub_slow_clients_dropped",
                       "Sockets dropped for falling too far behind (they resume from their seq).")
CONNECTIONS = Gauge("labelhub_ws_connections", "Open WebSocket connections.",
                    multiprocess_mode="livesum")
FANOUT_QUEUE = Gauge("labelhub_fanout_queue_frames",
                     "Frames waiting in the sockets' send queues, all sockets together.",
                     multiprocess_mode="livesum")
FANOUT_QUEUE_MAX = Gauge("labelhub_fanout_queue_frames_max",
                         "Frames waiting in the fullest socket's send queue.",
                         multiprocess_mode="livemax")
LOCKS = Gauge("labelhub_image_locks", "Images someone holds the lock on now.",
              multiprocess_mode="mostrecent")
JOBS = Gauge("labelhub_jobs", "Jobs by status (the queue's depth is status=queued).", ["status"],
             multiprocess_mode="mostrecent")
JOB_SECONDS = Histogram("labelhub_job_seconds", "How long a job ran in a worker, by kind and outcome.",
                        ["kind", "status"], buckets=_JOB_BUCKETS)

# Sampled by server/telemetry/stalls.py in a served process.
LOOP_LAG = Histogram("labelhub_event_loop_lag_seconds",
                     "How late the event loop ran a callback handed to it (sampled).",
                     buckets=_STALL_BUCKETS)
GC_PAUSE = Histogram("labelhub_gc_pause_seconds",
                     "Pauses of Python's cyclic garbage collector, by generation.",
                     ["generation"], buckets=_STALL_BUCKETS)


def observe_op(seconds: float, ops: int = 1) -> None:
    OPS.inc(ops)
    OP_SECONDS.observe(seconds)


def slow_client_dropped() -> None:
    SLOW_DROPPED.inc()


def observe_job(kind: str, status: str, seconds: float) -> None:
    JOB_SECONDS.labels(kind=kind, status=status).observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV) or None


def render() -> bytes:
    """The exposition text: this process's registry, or every process's files added up."""
    where = multiprocess_dir()
    if where is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=where)
    return generate_latest(registry)


def mark_dead(pid: int) -> None:
    """A worker ended: its live gauges stop counting."""
    where = multiprocess_dir()
    if where is not None:
        multiprocess.mark_process_dead(pid, where)
