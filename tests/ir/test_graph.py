"""Graph editing, use lists, verifier, printer and analyses."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym, VerificationError
from fuseformer.ir.analysis import dominators, liveness
from fuseformer.ir.attrs import SoftmaxAttrs, TransposeAttrs
from fuseformer.ir.interpreter import InputError, InterpreterError, run

B, S = Sym("batch"), Sym("seq")


def small_graph():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (B, S, 4))
    w = g.add_constant(np.eye(4, dtype=np.float32), "w")
    mm = g.make_node(Op.MatMul, [x, w], name="mm")
    relu = g.make_node(Op.Relu, [mm.output], name="relu")
    add = g.make_node(Op.Add, [relu.output, x], name="add")
    g.outputs.append(add.output)
    return g, x, w, mm, relu, add


def test_uses_are_tracked_on_creation():
    g, x, w, mm, relu, add = small_graph()
    assert [(n.name, i) for n, i in x.uses] == [("mm", 0), ("add", 1)]
    assert mm.output.users() == [relu]
    g.verify()


def test_symbolic_shapes_flow():
    g, *_, add = small_graph()
    assert add.output.shape == (B, S, 4)
    assert add.output.dtype is DType.FLOAT


def test_replace_all_uses_and_erase():
    g, x, w, mm, relu, add = small_graph()
    g.replace_all_uses_with(relu.output, mm.output)
    assert relu.output.uses == []
    assert add.inputs[0] is mm.output
    g.erase(relu)
    assert [n.name for n in g.nodes] == ["mm", "add"]
    assert [n.name for n, _ in mm.output.uses] == ["add"]
    g.verify()


def test_erase_refuses_used_node():
    g, x, w, mm, relu, add = small_graph()
    with pytest.raises(ValueError, match="still used by add"):
        g.erase(relu)


def test_replace_graph_output():
    g, x, w, mm, relu, add = small_graph()
    g.replace_all_uses_with(add.output, relu.output)
    assert g.outputs == [relu.output]
    g.erase(add)
    g.verify()


def test_inserting_before_keeps_order_valid():
    g, x, w, mm, relu, add = small_graph()
    with g.inserting_before(add):
        neg = g.make_node(Op.Neg, [relu.output], name="neg")
    add.set_input(0, neg.output)
    assert [n.name for n in g.nodes] == ["mm", "relu", "neg", "add"]
    g.verify()


def test_inserting_after_chains_in_program_order():
    g, x, w, mm, relu, add = small_graph()
    with g.inserting_after(mm):
        a = g.make_node(Op.Neg, [mm.output], name="a")
        b = g.make_node(Op.Neg, [a.output], name="b")
    relu.set_input(0, b.output)
    assert [n.name for n in g.nodes] == ["mm", "a", "b", "relu", "add"]
    g.verify()


def test_verify_catches_bad_order():
    g, x, w, mm, relu, add = small_graph()
    g.nodes.reverse()
    with pytest.raises(VerificationError, match="used before it is defined"):
        g.verify()
    g.sort()
    g.verify()
    assert [n.name for n in g.nodes] == ["mm", "relu", "add"]


def test_verify_catches_stale_use_list():
    g, x, w, mm, relu, add = small_graph()
    relu.inputs[0] = x  # bypasses set_input: use lists go stale
    with pytest.raises(VerificationError, match="use list"):
        g.verify()


def test_verify_catches_wrong_type():
    g, x, w, mm, relu, add = small_graph()
    relu.output.dtype = DType.INT64
    with pytest.raises(VerificationError, match="relu .Relu. output"):
        g.verify()


def test_verify_catches_wrong_shape():
    g, x, w, mm, relu, add = small_graph()
    mm.output.shape = (B, S, 5)
    with pytest.raises(VerificationError, match="mm .MatMul."):
        g.verify()


def test_duplicate_value_names_rejected():
    g = Graph()
    g.add_input("x", DType.FLOAT, (2,))
    with pytest.raises(ValueError, match="defined twice"):
        g.add_input("x", DType.FLOAT, (2,))


def test_wrong_attrs_type_rejected():
    g = Graph()
    x = g.add_input("x", DType.FLOAT, (2, 3))
    with pytest.raises(TypeError, match="TransposeAttrs"):
        g.make_node(Op.Transpose, [x], SoftmaxAttrs())


def test_printer_is_deterministic_and_readable():
    g = Graph("p")
    x = g.add_input("x", DType.FLOAT, (B, 3))
    t = g.make_node(Op.Transpose, [x], TransposeAttrs(perm=(1, 0)), name="t")
    g.make_node(Op.Softmax, [t.output], SoftmaxAttrs(axis=-1), name="sm")
    shape = g.add_constant(np.array([3, -1], np.int64), "shape")
    r = g.make_node(Op.Reshape, [g.nodes[-1].output, shape], name="r")
    g.outputs.append(r.output)
    assert str(g) == (
        "graph p(%x: f32[batch,3]) {\n"
        "  const %shape: i64[2] = [ 3,-1]\n"
        "  %t_out: f32[3,batch] = Transpose(%x) {perm=[1,0]}  # t\n"
        "  %sm_out: f32[3,batch] = Softmax(%t_out)  # sm\n"
        "  %r_out: f32[3,batch] = Reshape(%sm_out, %shape)  # r\n"
        "  return %r_out\n"
        "}")
    assert str(g) == str(g)


def test_networkx_view_and_dominators():
    g, x, w, mm, relu, add = small_graph()
    nxg = g.to_networkx()
    assert nxg.number_of_nodes() == 3 and nxg.number_of_edges() == 2
    idom = dominators(g)
    assert idom[relu] is mm and idom[add] is relu


def test_liveness():
    g, x, w, mm, relu, add = small_graph()
    live = liveness(g)
    assert live[mm.output] == (0, 1)
    assert live[relu.output] == (1, 2)
    assert live[add.output] == (2, 3)  # a graph output lives to the end


def test_interpreter_runs_and_frees():
    g, *_ = small_graph()
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    out = run(g, {"x": x})
    np.testing.assert_allclose(out[g.outputs[0].name], np.maximum(x, 0) + x, atol=1e-6)


def test_interpreter_input_errors():
    g, *_ = small_graph()
    with pytest.raises(InputError, match="missing"):
        run(g, {})
    with pytest.raises(InputError, match="must be float32"):
        run(g, {"x": np.zeros((1, 2, 4), np.float64)})
    with pytest.raises(InputError, match="dim 2 must be 4"):
        run(g, {"x": np.zeros((1, 2, 5), np.float32)})


def test_interpreter_symbols_must_agree():
    g = Graph()
    a = g.add_input("a", DType.FLOAT, (S,))
    b = g.add_input("b", DType.FLOAT, (S,))
    g.outputs.append(g.make_node(Op.Add, [a, b]).output)
    with pytest.raises(InputError, match="seq"):
        run(g, {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)})


def test_interpreter_error_names_node():
    g = Graph()
    a = g.add_input("a", DType.FLOAT, (None, 3))
    shape = g.add_constant(np.array([4, 4], np.int64), "shape")
    g.outputs.append(g.make_node(Op.Reshape, [a, shape], name="bad_reshape").output)
    with pytest.raises(InterpreterError, match=r"bad_reshape \(Reshape\)"):
        run(g, {"a": np.zeros((2, 3), np.float32)})


def test_float64_mode():
    g, *_ = small_graph()
    x = np.random.default_rng(1).standard_normal((1, 2, 4)).astype(np.float32)
    out = run(g, {"x": x}, float_dtype=np.float64)
    assert out[g.outputs[0].name].dtype == np.float64


def test_replacing_a_constant_output_keeps_the_constant_table_right():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (2,))
    c = g.add_constant(np.ones(2, np.float32), "c")
    g.outputs.extend([c, g.make_node(Op.Relu, [x], name="relu").output])
    g.replace_all_uses_with(c, g.nodes[0].output)
    assert g.outputs[0].name == "c" and g.outputs[0].producer.op is Op.Identity
    assert all(name == v.name for name, v in g.constants.items())
    g.verify()
