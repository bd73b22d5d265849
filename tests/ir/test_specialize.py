"""specialize(): symbols bound, every shape static, the same numbers."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.errors import ModelError
from fuseformer.ir.interpreter import run
from fuseformer.ir.shape import is_static
from fuseformer.ir.specialize import specialize
from fuseformer.passes import optimize_graph

from ..zoo import zoo_inputs, zoo_model


@pytest.mark.parametrize("name,dims", [("vit", {"batch": 1}), ("bert", {"batch": 1, "sequence": 9})])
def test_zoo_model_specializes_to_static_shapes(name, dims):
    g = optimize_graph(load_onnx(zoo_model(name, "torchscript", 17)))
    s = specialize(g, dims)
    assert all(is_static(o.shape) for n in s.nodes for o in n.outputs)
    assert all(is_static(v.shape) for v in s.inputs)
    # the exporter's shape arithmetic is folded away once the dims are known
    assert not any(n.op is Op.Shape for n in s.nodes)
    assert len(s.nodes) < len(g.nodes)
    feeds = zoo_inputs(name, seed=0, batch=1, **({"seq": dims["sequence"]} if "sequence" in dims else {}))
    want, got = run(g, feeds), run(s, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=1e-6, rtol=1e-6, err_msg=k)
    assert g.inputs[0].shape[0] == Sym("batch")  # the original is left alone


def test_missing_dim_is_named():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("seq"), 4))
    g.outputs.append(g.make_node(Op.Relu, [x]).outputs[0])
    with pytest.raises(ModelError, match="seq"):
        specialize(g, {})


def test_folded_scalar_stays_scalar():
    # Shape -> Gather(scalar index) folds to a 0-d constant; Unsqueeze of it must give [1],
    # not [1, 1] (np.ascontiguousarray turns 0-d arrays into 1-d ones)
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("n"), 3))
    shape = g.make_node(Op.Shape, [x]).outputs[0]
    idx = g.add_constant(np.array(0, np.int64), "i")
    d = g.make_node(Op.Gather, [shape, idx]).outputs[0]
    axes = g.add_constant(np.array([0], np.int64), "axes")
    u = g.make_node(Op.Unsqueeze, [d, axes]).outputs[0]
    three = g.add_constant(np.array([3], np.int64), "three")
    target = g.make_node(Op.Concat, [u, three], Op.Concat.attrs_type(axis=0)).outputs[0]
    g.outputs.append(g.make_node(Op.Reshape, [x, target]).outputs[0])
    s = specialize(g, {"n": 5})
    assert s.outputs[0].shape == (5, 3)
