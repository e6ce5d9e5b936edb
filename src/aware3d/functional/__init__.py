"""Stateless math: the canonical API. Nothing here imports :mod:`aware3d.nn`."""

__all__: list[str] = []
