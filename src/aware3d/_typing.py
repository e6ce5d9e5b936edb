"""Shared jaxtyping aliases and the dimension letters every signature uses.

Dimension letters (see ``docs/pages/conventions.md``):

========  ==========================================
letter    meaning
========  ==========================================
``B``     scenes (the batch)
``C``     cameras per scene
``N``     Gaussians
``R``     rays
``S``     samples per ray
``H W``   image height and width
``F``     feature channels
``D``     style width
``L``     levels of the hierarchy
``K``     children per parent
========  ==========================================

``*batch`` stands for any leading batch shape.
"""

from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor

DIMENSION_LETTERS: dict[str, str] = {
    "B": "scenes (batch)",
    "C": "cameras per scene",
    "N": "Gaussians",
    "R": "rays",
    "S": "samples per ray",
    "H": "image height",
    "W": "image width",
    "F": "feature channels",
    "D": "style width",
    "L": "levels",
    "K": "children per parent",
}

Matrix4 = Float[Tensor, "*batch 4 4"]
Matrix3 = Float[Tensor, "*batch 3 3"]
Vector3 = Float[Tensor, "*batch 3"]

__all__ = [
    "DIMENSION_LETTERS",
    "Bool",
    "Float",
    "Int",
    "Matrix3",
    "Matrix4",
    "Shaped",
    "Tensor",
    "Vector3",
]
