import numpy as np

from fuseformer.ir import Op

from .harness import check_op


def test_add_broadcast():
    rng = np.random.default_rng(0)
    check_op(Op.Add, [rng.standard_normal((2, 3), dtype=np.float32), rng.standard_normal((3,), dtype=np.float32)])


def test_relu():
    check_op(Op.Relu, [np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)])
