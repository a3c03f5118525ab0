"""The live-server and jobs fixtures, for the telemetry tests."""

from tests.hub.conftest import server, team
from tests.jobs.conftest import project

__all__ = ["project", "server", "team"]
