"""``python -m aware3d demo`` is the same as ``aware3d demo``."""

from aware3d.cli import main

main()
