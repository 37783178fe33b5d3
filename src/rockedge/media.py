"""The image files rockedge reads: one list for datasets, calibration folders and ``rockedge run`` alike, so a
folder of ``.ppm`` frames that runs is also a dataset."""

from __future__ import annotations

# What OpenCV's imread decodes in every build rockedge supports (pip's wheels and JetPack's).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2")
