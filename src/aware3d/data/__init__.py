"""Datasets: EG3D-format images with camera labels, and synthetic multi-view scenes."""

from aware3d.data.eg3d import EG3DBatch, EG3DDataset, EG3DItem
from aware3d.data.synthetic import SyntheticScenes

__all__ = ["EG3DBatch", "EG3DDataset", "EG3DItem", "SyntheticScenes"]
