"""Datasets (VOC/CVAT and plain folders) and the synthetic rock-scene generator. numpy + OpenCV only."""
