"""Datasets: EG3D-format images with camera labels, and synthetic multi-view scenes."""

from aware3d.data.eg3d import EG3DBatch, EG3DDataset, EG3DItem

__all__ = ["EG3DBatch", "EG3DDataset", "EG3DItem"]
