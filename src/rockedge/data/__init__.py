"""Datasets (VOC/CVAT and plain folders) and the synthetic rock-scene generator. numpy + OpenCV only."""

from rockedge.data.datasets import SegDataset, open_dataset
from rockedge.data.labelmap import LabelMap, read_labelmap, write_labelmap
from rockedge.data.synth import render_scene, write_synth_dataset, write_synth_video

__all__ = [
    "LabelMap",
    "SegDataset",
    "open_dataset",
    "read_labelmap",
    "render_scene",
    "write_labelmap",
    "write_synth_dataset",
    "write_synth_video",
]
