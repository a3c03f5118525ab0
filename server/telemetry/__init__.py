"""Watching a running Labelhub with the tools a team already has.

- :mod:`server.telemetry.metrics`: Prometheus metrics (``prometheus-client``), in its
  multi-process mode when ``PROMETHEUS_MULTIPROC_DIR`` is set, as ``labelhub serve`` does for
  itself and the job workers it starts; the hot path only bumps a counter or a histogram once per
  op, while gauges (sockets, fan-out queues, locks, the job queue) are sampled.
- :mod:`server.telemetry.logs`: one JSON object per log line (``LABELHUB_LOG_FORMAT=json``) and
  a request id on every line logged while a request or socket is served.
- :mod:`server.telemetry.stalls`: how late the event loop runs and how long the garbage
  collector pauses (metrics), and a log line naming the Python frames of each long stall.
- :mod:`server.telemetry.routes`: ``GET /metrics`` and ``GET /readyz``.
- :mod:`server.telemetry._dirs`: the multi-process directory, chosen before
  ``prometheus_client`` is first imported (it decides its storage then): so this package's
  ``__init__`` imports nothing.
"""
