"""Per-channel affine maps folded into the neighbouring linear layer (Conv, Gemm, MatMul, Linear).

Covers inference BatchNorm (after BatchNormToAffine), SLAB's RepBN
(BN(x) + alpha x), Unified Normalization at inference, and any Mul/Add-by-
constant chain that scales channels.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value
from ..base import Pass, PassResult
from .affine import channel_vector
from .move_affine import move_one

_LINEAR = (Op.Conv, Op.MatMul, Op.Gemm, Op.Linear)
_MAX_ROUNDS = 16


def _drop_dead_affine(graph: Graph) -> None:
    """Rewrites leave the nodes they replaced behind; drop them so no later round rewrites them again."""
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph.nodes)):
            if node.op in (Op.Mul, Op.Add, Op.Div) and not any(v.uses or v in graph.outputs for v in node.outputs):
                graph.erase(node)
                changed = True


def _const_operand(node: Node) -> tuple[Value, Value] | None:
    """(variable, constant) operands of a binary Mul/Add with exactly one constant."""
    a, b = node.inputs[0], node.inputs[1]
    if b.const is not None and a.const is None:
        return a, b
    if a.const is not None and b.const is None:
        return b, a
    return None


def _single_user(v: Value, graph: Graph) -> Node | None:
    """The one node reading v's values (Shape and Size read only its shape, which stays)."""
    users = [u for u in v.users() if u.op not in (Op.Shape, Op.Size)]
    if len(users) != 1 or v in graph.outputs:
        return None
    return users[0]


class CombineAffine(Pass):
    """Merge chains of per-element constant scalings and shifts into one Mul and one Add.

    1. (x * a) * b -> x * (a b);  (x + a) + b -> x + (a + b)
    2. (x + c) * a -> x * a + c a
    3. (u + c) + w -> (u + w) + c                  (constants move to the end of Add chains)
    4. x * a + x * b -> x * (a + b)                  (RepBN: BN(x) + alpha x)
    5. x / c -> x * (1/c)  next to a linear layer or another affine op (Unified Normalization's
       x / sqrt(var + eps)); equal within one rounding
    Every rewrite keeps the result's shape: merged constants broadcast to no more than it.
    """

    name = "combine-affine"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = False
        for node in list(graph.nodes):
            if node.graph is not graph or not node.outputs[0].dtype.is_float:
                continue
            if node.op is Op.Div:
                modified |= self._div_to_mul(graph, node)
            elif node.op in (Op.Mul, Op.Add):
                modified |= self._combine(graph, node)
        return PassResult(graph, modified)

    @staticmethod
    def _div_to_mul(graph: Graph, node: Node) -> bool:
        x, c = node.inputs[0], node.inputs[1]
        if x.const is not None or c.const is None:
            return False
        cv = np.asarray(c.const.numpy())
        if cv.size == 0 or np.any(cv == 0):
            return False
        affine = (Op.Mul, Op.Add, *_LINEAR)
        near = (x.producer is not None and x.producer.op in affine) or \
            any(u.op in affine for u in node.outputs[0].users())
        if not near:
            return False
        inverse = (1 / cv.astype(np.float64)).astype(cv.dtype)
        if not np.all(np.isfinite(inverse)):
            return False  # 1/c overflows this dtype: x / c is the only safe spelling
        with graph.inserting_before(node):
            inv = graph.add_constant(inverse, f"{node.name}/inverse")
            new = graph.make_node(Op.Mul, [x, inv], name=f"{node.name}/mul").output
        graph.replace_all_uses_with(node.outputs[0], new)
        graph.erase(node)
        return True

    def _combine(self, graph: Graph, node: Node) -> bool:
        pair = _const_operand(node)
        if node.op is Op.Add and pair is None:
            return self._sum_of_scalings(graph, node)
        if pair is None:
            return False
        x, k = pair
        inner = x.producer
        if inner is None or inner.op not in (Op.Mul, Op.Add) or _single_user(x, graph) is not node:
            if node.op is Op.Add and inner is not None and inner.op is Op.Add:
                return False
            return False
        inner_pair = _const_operand(inner)
        if inner_pair is None:
            if node.op is Op.Add and inner.op is Op.Add:
                return False
            return False
        y, j = inner_pair
        kv, jv = np.asarray(k.const.numpy()), np.asarray(j.const.numpy())
        out = node.outputs[0]
        if not self._fits(out, kv, jv):
            return False
        with graph.inserting_before(node):
            if node.op is inner.op:  # rule 1
                merged = kv * jv if node.op is Op.Mul else kv + jv
                c = graph.add_constant(merged.astype(kv.dtype), f"{node.name}/merged")
                new = graph.make_node(node.op, [y, c], name=f"{node.name}/merged").output
            elif node.op is Op.Mul:  # rule 2: inner is the Add
                a = graph.add_constant(kv, f"{node.name}/scale")
                ca = graph.add_constant((jv * kv).astype(kv.dtype), f"{node.name}/shift")
                m = graph.make_node(Op.Mul, [y, a], name=f"{node.name}/mul").output
                new = graph.make_node(Op.Add, [m, ca], name=f"{node.name}/add").output
            else:
                return False
        graph.replace_all_uses_with(out, new)
        return True

    @staticmethod
    def _fits(out: Value, *consts: np.ndarray) -> bool:
        if out.shape is None:
            return False
        try:
            shape = np.broadcast_shapes(*(c.shape for c in consts))
        except ValueError:
            return False
        if len(shape) > len(out.shape):
            return False
        tail = out.shape[len(out.shape) - len(shape):]
        return all(s == 1 or s == d for s, d in zip(shape, tail))

    def _sum_of_scalings(self, graph: Graph, node: Node) -> bool:
        a, b = node.inputs
        pa, pb = a.producer, b.producer
        # rule 3: (u + c) + w -> (u + w) + c
        for left, right in ((a, b), (b, a)):
            p = left.producer
            if p is not None and p.op is Op.Add and _const_operand(p) and _single_user(left, graph) is node:
                u, c = _const_operand(p)
                if right.producer is not None and right.producer.op is Op.Mul:
                    with graph.inserting_before(node):
                        s = graph.make_node(Op.Add, [u, right], name=f"{node.name}/sum").output
                        new = graph.make_node(Op.Add, [s, c], name=f"{node.name}/shift").output
                    if s.shape != node.outputs[0].shape:
                        return False  # the constant was what broadcast the result
                    graph.replace_all_uses_with(node.outputs[0], new)
                    return True
        # rule 4: x * a + x * b -> x * (a + b)
        if pa is None or pb is None or pa.op is not Op.Mul or pb.op is not Op.Mul:
            return False
        qa, qb = _const_operand(pa), _const_operand(pb)
        if qa is None or qb is None or qa[0] is not qb[0]:
            return False
        if _single_user(a, graph) is not node or _single_user(b, graph) is not node:
            return False
        x = qa[0]
        av, bv = np.asarray(qa[1].const.numpy()), np.asarray(qb[1].const.numpy())
        if not self._fits(node.outputs[0], av, bv) or x.shape != node.outputs[0].shape:
            return False
        with graph.inserting_before(node):
            c = graph.add_constant((av + bv).astype(av.dtype), f"{node.name}/scale")
            new = graph.make_node(Op.Mul, [x, c], name=f"{node.name}/scale").output
        graph.replace_all_uses_with(node.outputs[0], new)
        return True


class FoldAffineIntoLinear(Pass):
    """Absorb per-channel Mul/Add by constants into the adjacent linear layer's weights.

    Runs CombineAffine and the moves of move_affine.py in the same loop, so an
    affine separated from its layer by layout ops (LeViT, SLAB) reaches it.

    After (y = L(x), channel o of y):
        L(x) * s  ->  L'(x),  W'[o] = s[o] W[o],  b'[o] = s[o] b[o]
        L(x) + c  ->  L'(x),  b'[o] = b[o] + c[o]
    Before (channel i of x):
        L(x * s)  ->  L'(x),  W'[.., i] = W[.., i] s[i]
        L(x + c)  ->  L'(x),  b' = b + W c           (Conv only without padding: padded zeros
                                                     would otherwise become -c)
    For Conv, o is axis 1 of y and W is [Cout, Cin/groups, k...]; for MatMul, Gemm and
    Linear, o is the last axis. A weight shared with another layer is not rewritten.
    """

    name = "fold-affine-into-linear"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        """Combine, move and fold until nothing changes (each step exposes the next)."""
        modified = False
        for _ in range(_MAX_ROUNDS):
            changed = CombineAffine().run(graph, ctx).modified
            changed |= self._move(graph)
            changed |= self._fold_all(graph, ctx)
            _drop_dead_affine(graph)
            modified |= changed
            if not changed:
                break
        return PassResult(graph, modified)

    @staticmethod
    def _move(graph: Graph) -> bool:
        moved = False
        for node in list(graph.nodes):
            if node.graph is graph and node.op in (Op.Mul, Op.Add):
                moved |= move_one(graph, node)
        return moved

    def _fold_all(self, graph: Graph, ctx) -> bool:
        modified = False
        for node in list(graph.nodes):
            if node.graph is not graph or node.op not in _LINEAR:
                continue
            layer = _Layer.of(node, graph)
            if layer is None:
                continue
            while self._fold_after(graph, layer) or self._fold_before(graph, layer):
                modified = True
                if ctx is not None:
                    ctx.report.record_fired("Affine -> linear weights")
                if node.op is Op.MatMul and node.outputs[0].users() and \
                        node.outputs[0].users()[0].op is Op.Add:
                    break  # a bias Add was placed after it: the layer ends there now
        return modified

    def _fold_after(self, graph: Graph, layer: "_Layer") -> bool:
        y = layer.node.outputs[0]
        user = _single_user(y, graph)
        if user is None or user.op not in (Op.Mul, Op.Add):
            return False
        if user.op is Op.Add and layer.node.op is Op.MatMul:
            return False  # that Add is the bias the Linear fusion takes
        pair = _const_operand(user)
        if pair is None:
            return False
        vec = channel_vector(pair[1], user.outputs[0].rank, layer.out_axis, layer.out_channels)
        if vec is None or user.outputs[0].shape != y.shape:
            return False
        if user.op is Op.Mul:
            layer.scale_out(vec)
        else:
            layer.shift_out(vec)
        layer.commit()
        graph.replace_all_uses_with(user.outputs[0], y)
        graph.erase(user)
        return True

    def _fold_before(self, graph: Graph, layer: "_Layer") -> bool:
        x = layer.node.inputs[0]
        p = x.producer
        if p is None or p.op not in (Op.Mul, Op.Add) or _single_user(x, graph) is not layer.node:
            return False
        pair = _const_operand(p)
        if pair is None or pair[0].shape != x.shape:
            return False
        vec = channel_vector(pair[1], x.rank, layer.in_axis, layer.in_channels)
        if vec is None:
            return False
        if p.op is Op.Mul:
            layer.scale_in(vec)
        elif not layer.shift_in(vec, graph):
            return self._swap_shift_and_scale(graph, p)
        layer.commit()
        layer.node.set_input(0, pair[0])
        graph.erase(p)
        return True


    @staticmethod
    def _swap_shift_and_scale(graph: Graph, add: Node) -> bool:
        """x a + c -> (x + c/a) a, so the scale can reach a layer the shift may not (padded Conv)."""
        x, c = _const_operand(add)
        mul = x.producer
        if mul is None or mul.op is not Op.Mul or _single_user(x, graph) is not add:
            return False
        pair = _const_operand(mul)
        if pair is None:
            return False
        y, a = pair
        av, cv = np.asarray(a.const.numpy(), np.float64), np.asarray(c.const.numpy(), np.float64)
        if np.any(av == 0) or av.shape != cv.shape and av.size != 1 and cv.size != 1:
            return False
        dtype = x.dtype.numpy
        with graph.inserting_before(add):
            shift = graph.add_constant((cv / av).astype(dtype), f"{add.name}/shift")
            moved = graph.make_node(Op.Add, [y, shift], name=f"{add.name}/shift").output
            scale = graph.add_constant(av.astype(dtype), f"{add.name}/scale")
            out = graph.make_node(Op.Mul, [moved, scale], name=f"{add.name}/scale").output
        graph.replace_all_uses_with(add.outputs[0], out)
        graph.erase(add)
        graph.erase(mul)
        return True


class _Layer:
    """A linear layer's weight and bias as float64 arrays, edited then written back as new constants."""

    def __init__(self, node: Node, graph: Graph, w: np.ndarray, b: np.ndarray | None,
                 out_axis: int, in_axis: int):
        self.node, self.graph = node, graph
        self.w, self.b = w, b
        self.out_axis, self.in_axis = out_axis, in_axis
        self.dtype = node.inputs[0].dtype.numpy

    @classmethod
    def of(cls, node: Node, graph: Graph) -> "_Layer | None":
        w = node.input(1)
        if w is None or w.const is None or len(w.users()) != 1 or w in graph.outputs:
            return None
        if not node.outputs[0].dtype.is_float:
            return None
        wa = np.asarray(w.const.numpy(), np.float64)
        b = node.input(2)
        if b is not None and (b.const is None or len(b.users()) != 1):
            return None
        ba = None if b is None else np.asarray(b.const.numpy(), np.float64)
        if node.op is Op.Conv:
            return cls(node, graph, wa, ba, 1, 1)
        if node.op is Op.Gemm:
            a = node.attrs
            if a.transA or (b is not None and ba.ndim > 1 and ba.shape[0] != 1):
                return None
            wa = (wa.T if a.transB else wa) * a.alpha
            ba = None if ba is None else ba.reshape(-1) * a.beta
            return cls(node, graph, wa, ba, -1, -1)
        if wa.ndim != 2:
            return None
        if node.op is Op.Linear and (node.input(3) is not None or node.attrs.activation != "none"):
            return None
        return cls(node, graph, wa, ba, -1, -1)

    @property
    def out_channels(self) -> int:
        return self.w.shape[0] if self.node.op is Op.Conv else self.w.shape[1]

    @property
    def in_channels(self) -> int:
        if self.node.op is Op.Conv:
            return self.w.shape[1] * self.node.attrs.group
        return self.w.shape[0]

    def _conv_in_index(self) -> np.ndarray:
        """For Conv weight [Cout, Cin/G, ...]: the input channel each (o, i) reads."""
        cout, cin_g = self.w.shape[:2]
        groups = self.node.attrs.group
        o = np.arange(cout)[:, None] // (cout // groups)
        return o * cin_g + np.arange(cin_g)[None, :]

    def scale_out(self, s: np.ndarray) -> None:
        if self.node.op is Op.Conv:
            self.w = self.w * s.reshape((-1,) + (1,) * (self.w.ndim - 1))
        else:
            self.w = self.w * s[None, :]
        if self.b is not None:
            self.b = self.b * s

    def shift_out(self, c: np.ndarray) -> None:
        self.b = c.astype(np.float64) if self.b is None else self.b + c

    def scale_in(self, s: np.ndarray) -> None:
        if self.node.op is Op.Conv:
            factor = s[self._conv_in_index()]
            self.w = self.w * factor.reshape(factor.shape + (1,) * (self.w.ndim - 2))
        else:
            self.w = self.w * s[:, None]

    def shift_in(self, c: np.ndarray, graph: Graph) -> bool:
        if self.node.op is Op.Conv:
            a = self.node.attrs
            if any(a.pads or ()) or a.auto_pad not in ("NOTSET", "VALID"):
                return False
            per = (self.w * c[self._conv_in_index()].reshape(self.w.shape[:2] + (1,) * (self.w.ndim - 2)))
            delta = per.reshape(self.w.shape[0], -1).sum(axis=1)
        else:
            delta = c @ self.w
        self.b = delta if self.b is None else self.b + delta
        return True

    def commit(self) -> None:
        """Write W and b back: new constants, the node rewired (Gemm normalized to alpha=beta=1)."""
        node, g = self.node, self.graph
        w = self.w
        if node.op is Op.Gemm:
            if node.attrs.transB:
                w = w.T
            node.attrs = node.attrs.replace(alpha=1.0, beta=1.0)
        node.set_input(1, g.add_constant(w.astype(self.dtype), f"{node.name}/weight"))
        if self.b is not None:
            bias = g.add_constant(self.b.astype(self.dtype), f"{node.name}/bias")
            if node.op is Op.MatMul:
                self._matmul_to_gemm_or_add(bias)
            elif len(node.inputs) > 2:
                node.set_input(2, bias)
            else:
                node.inputs.append(None)
                node.set_input(2, bias)
        g.remove_unused_constants()

    def _matmul_to_gemm_or_add(self, bias: Value) -> None:
        """MatMul has no bias input: add one after it (the Linear fusion then takes MatMul + Add)."""
        node, g = self.node, self.graph
        y = node.outputs[0]
        uses = list(y.uses)
        with g.inserting_after(node):
            added = g.make_node(Op.Add, [y, bias], name=f"{node.name}/bias").output
        for user, i in uses:
            user.set_input(i, added)
        if y in g.outputs:
            y.name, added.name = added.name, y.name
            g.outputs = [added if o is y else o for o in g.outputs]
        self.b = None
