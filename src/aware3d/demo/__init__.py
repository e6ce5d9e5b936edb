"""The demo: the demo recipe trained by :func:`aware3d.training.fit`, plus its figures."""

from aware3d.demo.run import DemoEvaluation, demo_metrics, run_demo

__all__ = ["DemoEvaluation", "demo_metrics", "run_demo"]
