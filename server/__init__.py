"""Labelhub: the server package."""

import os

# OpenCV reads this once, when it loads: images past 100 MP are refused before their pixels are
# allocated (decompression bombs). Set here so it precedes every ``import cv2`` in the server.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "100000000")
