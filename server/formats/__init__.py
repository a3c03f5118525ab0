"""Import and export in the formats people train with; one module per format.

Export: ``json`` (native, lossless), ``csv``, ``coco``, ``yolo``, ``voc``, ``masks``,
``labelstudio``, ``cvat``. Import: all of them but ``masks``' export-only options. Routes are in
``_routes.py``, the steps they share with the jobs (``_jobs.py``) in ``_pipeline.py``.
"""

from __future__ import annotations

from server.formats._routes import routes

__all__ = ["routes"]
