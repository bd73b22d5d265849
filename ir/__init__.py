"""fuseformer's IR: a typed SSA dataflow graph with symbolic shapes."""
from .attrs import Attrs
from .dtype import DType
from .graph import Graph
from .node import Node
from .op import Op
from .shape import Dim, Shape, Sym
from .tensor import Tensor
from .value import Value
from .verify import VerificationError

__all__ = ["Attrs", "DType", "Dim", "Graph", "Node", "Op", "Shape", "Sym", "Tensor", "Value",
           "VerificationError"]
