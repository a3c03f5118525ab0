"""Import and export in the formats people train with; one module per format.

Export: ``json`` (native, lossless), ``csv``, ``coco``, ``yolo``, ``voc``, ``masks``.
Import: ``json``, ``csv``, ``coco``, ``masks``. Routes are in ``_routes.py``.
"""

from __future__ import annotations

from server.formats._routes import routes

__all__ = ["routes"]
