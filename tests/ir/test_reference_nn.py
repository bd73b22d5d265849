"""The numpy references of the nn ops against onnxruntime, one node at a time."""
import numpy as np
import pytest

from fuseformer.ir import Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.ir.interpreter import InterpreterError, run

from .harness import FP32_TOL, run_ir
from .harness import check_op as _check_op

TOL = FP32_TOL


def check_op(op, inputs, *args, **kwargs):
    # onnxruntime 1.32 crashes (SIGSEGV) on LayerNormalization whose trailing optional input
    # is present but empty (""), so trailing omitted inputs are dropped instead
    while inputs and inputs[-1] is None:
        inputs = inputs[:-1]
    return _check_op(op, inputs, *args, **kwargs)


def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(dtype)


# ---- matrix products -----------------------------------------------------
@pytest.mark.parametrize("sa, sb", [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((2, 3, 4), (4, 6)),
])
def test_matmul(sa, sb):
    check_op(Op.MatMul, [randn(*sa), randn(*sb, seed=1)], **TOL)


def test_matmul_int():
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    check_op(Op.MatMul, [a, a.T.copy()])


@pytest.mark.parametrize("attrs, sa, sb, sc", [
    (A.GemmAttrs(), (3, 4), (4, 5), None),
    (A.GemmAttrs(alpha=0.5, beta=2.0), (3, 4), (4, 5), (5,)),
    (A.GemmAttrs(transA=1), (4, 3), (4, 5), (3, 5)),
    (A.GemmAttrs(transB=1, beta=-1.0), (3, 4), (5, 4), (3, 1)),
    (A.GemmAttrs(transA=1, transB=1, alpha=2.0), (4, 3), (5, 4), ()),
])
def test_gemm(attrs, sa, sb, sc):
    inputs = [randn(*sa), randn(*sb, seed=1), None if sc is None else randn(*sc, seed=2)]
    check_op(Op.Gemm, inputs, attrs, const_inputs={1}, **TOL)


@pytest.mark.parametrize("equation, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
])
def test_einsum(equation, shapes):
    inputs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    check_op(Op.Einsum, inputs, A.EinsumAttrs(equation=equation), **TOL)


@pytest.mark.parametrize("equation", ["ij,jk->ik", "ijk->ij", "i1->i", "ij->ii"])
def test_einsum_rejects_bad_equation(equation):
    with pytest.raises(InterpreterError, match="Einsum"):
        run_ir(Op.Einsum, [randn(3, 4)], A.EinsumAttrs(equation=equation))


# ---- convolution ---------------------------------------------------------
CONV_CASES = {
    "1d": ((2, 4, 11), (6, 4, 3), A.ConvAttrs()),
    "1d_strided_dilated": ((2, 4, 11), (6, 4, 3), A.ConvAttrs(strides=(2,), dilations=(2,), pads=(1, 2))),
    "2d": ((2, 3, 8, 9), (5, 3, 3, 3), A.ConvAttrs()),
    "2d_kernel_shape": ((1, 3, 8, 9), (5, 3, 3, 2), A.ConvAttrs(kernel_shape=(3, 2))),
    "2d_stride_pad": ((2, 3, 8, 9), (5, 3, 3, 3), A.ConvAttrs(strides=(2, 2), pads=(1, 1, 1, 1))),
    "2d_asym_pads": ((1, 3, 7, 8), (4, 3, 3, 3), A.ConvAttrs(strides=(2, 1), pads=(0, 2, 1, 0))),
    "2d_dilated": ((1, 3, 10, 9), (4, 3, 3, 2), A.ConvAttrs(dilations=(2, 3), pads=(1, 1, 1, 1))),
    "2d_group": ((2, 4, 7, 8), (6, 2, 3, 3), A.ConvAttrs(group=2, strides=(2, 1), pads=(1, 0, 2, 1))),
    "depthwise": ((2, 4, 7, 8), (4, 1, 3, 3), A.ConvAttrs(group=4, pads=(1, 1, 1, 1))),
    "depthwise_mult": ((1, 3, 6, 6), (6, 1, 3, 3), A.ConvAttrs(group=3, strides=(2, 2))),
    "pointwise": ((2, 8, 5, 5), (4, 8, 1, 1), A.ConvAttrs()),
    "same_upper": ((1, 3, 7, 8), (4, 3, 4, 3), A.ConvAttrs(auto_pad="SAME_UPPER", strides=(2, 2))),
    "same_lower": ((1, 3, 7, 8), (4, 3, 4, 3), A.ConvAttrs(auto_pad="SAME_LOWER", strides=(2, 2))),
    "valid": ((1, 3, 7, 8), (4, 3, 3, 3), A.ConvAttrs(auto_pad="VALID", strides=(2, 3))),
    "3d": ((1, 2, 5, 6, 4), (3, 2, 3, 2, 2), A.ConvAttrs(strides=(1, 2, 1), pads=(1, 0, 1, 1, 1, 0))),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case, bias):
    sx, sw, attrs = CONV_CASES[case]
    inputs = [randn(*sx), randn(*sw, seed=1), randn(sw[0], seed=2) if bias else None]
    check_op(Op.Conv, inputs, attrs, const_inputs={1, 2}, **TOL)


@pytest.mark.parametrize("auto_pad, pads", [("SAME_UPPER", (0, 2, 1, 2)), ("SAME_LOWER", (1, 2, 0, 2))])
def test_conv_same_dilated(auto_pad, pads):
    # onnxruntime rejects dilations with SAME: compare with the explicit pads the spec implies
    # (padding total = (out - 1) * stride + (kernel - 1) * dilation + 1 - in)
    x, w = randn(1, 2, 8, 9), randn(3, 2, 2, 3, seed=1)
    same = run_ir(Op.Conv, [x, w], A.ConvAttrs(auto_pad=auto_pad, dilations=(2, 2), strides=(2, 1)),
                  const_inputs={1})[0]
    explicit = check_op(Op.Conv, [x, w], A.ConvAttrs(pads=pads, dilations=(2, 2), strides=(2, 1)),
                        const_inputs={1}, **TOL)[0]
    np.testing.assert_array_equal(same, explicit)


def test_conv_float64():
    # onnxruntime has no double Conv: compare with its float32 result
    x, w = randn(1, 2, 6, 6, dtype=np.float64), randn(3, 2, 3, 3, seed=1, dtype=np.float64)
    attrs = A.ConvAttrs(pads=(1, 1, 1, 1))
    ours = run_ir(Op.Conv, [x, w], attrs, const_inputs={1})[0]
    theirs = check_op(Op.Conv, [x.astype(np.float32), w.astype(np.float32)], attrs, const_inputs={1}, **TOL)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs[0], **TOL)


CONV_T_CASES = {
    "1d": ((2, 3, 5), (3, 4, 3), A.ConvTransposeAttrs()),
    "1d_stride": ((2, 3, 5), (3, 4, 3), A.ConvTransposeAttrs(strides=(2,), pads=(1, 0))),
    "2d": ((1, 3, 4, 5), (3, 2, 3, 3), A.ConvTransposeAttrs()),
    "2d_stride_pad": ((2, 3, 4, 5), (3, 2, 3, 3), A.ConvTransposeAttrs(strides=(2, 2), pads=(1, 1, 1, 1))),
    "2d_asym": ((1, 2, 4, 4), (2, 3, 3, 2), A.ConvTransposeAttrs(strides=(2, 3), pads=(0, 1, 2, 0))),
    "output_padding": ((1, 2, 4, 5), (2, 3, 3, 3),
                       A.ConvTransposeAttrs(strides=(2, 3), pads=(1, 1, 1, 1), output_padding=(1, 2))),
    "dilated": ((1, 2, 4, 5), (2, 3, 3, 2), A.ConvTransposeAttrs(dilations=(2, 3), strides=(2, 1))),
    "group": ((1, 4, 4, 5), (4, 3, 3, 3), A.ConvTransposeAttrs(group=2, strides=(2, 2))),
    "depthwise": ((2, 4, 3, 3), (4, 1, 2, 2), A.ConvTransposeAttrs(group=4, strides=(2, 2))),
    "output_shape": ((1, 2, 4, 5), (2, 3, 3, 3), A.ConvTransposeAttrs(strides=(2, 2), output_shape=(8, 10))),
    "output_shape_odd": ((1, 2, 4, 5), (2, 3, 3, 3),
                         A.ConvTransposeAttrs(strides=(2, 2), output_shape=(7, 9))),
    "same_upper": ((1, 2, 4, 5), (2, 3, 3, 4), A.ConvTransposeAttrs(strides=(2, 2), auto_pad="SAME_UPPER")),
    "same_lower": ((1, 2, 4, 5), (2, 3, 3, 4), A.ConvTransposeAttrs(strides=(2, 2), auto_pad="SAME_LOWER")),
    "valid": ((1, 2, 4, 5), (2, 3, 3, 3), A.ConvTransposeAttrs(strides=(2, 2), auto_pad="VALID")),
    "kernel_shape": ((1, 2, 4, 5), (2, 3, 2, 3), A.ConvTransposeAttrs(kernel_shape=(2, 3))),
    "3d": ((1, 2, 3, 4, 2), (2, 2, 2, 3, 2), A.ConvTransposeAttrs(strides=(2, 1, 2))),
}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("case", CONV_T_CASES)
def test_conv_transpose(case, bias):
    sx, sw, attrs = CONV_T_CASES[case]
    out_channels = sw[1] * attrs.group
    inputs = [randn(*sx), randn(*sw, seed=1), randn(out_channels, seed=2) if bias else None]
    check_op(Op.ConvTranspose, inputs, attrs, const_inputs={1, 2}, **TOL)


# ---- pooling -------------------------------------------------------------
MAX_POOL_CASES = {
    "1d": ((2, 3, 11), A.MaxPoolAttrs(kernel_shape=(3,), strides=(2,))),
    "2d": ((2, 3, 8, 9), A.MaxPoolAttrs(kernel_shape=(2, 2), strides=(2, 2))),
    "overlap_pad": ((1, 2, 7, 8), A.MaxPoolAttrs(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))),
    "asym_pads": ((1, 2, 7, 8), A.MaxPoolAttrs(kernel_shape=(3, 2), pads=(0, 1, 2, 0))),
    "dilated": ((1, 2, 9, 9), A.MaxPoolAttrs(kernel_shape=(2, 3), dilations=(2, 2), strides=(1, 2))),
    "ceil": ((1, 2, 8, 8), A.MaxPoolAttrs(kernel_shape=(3, 3), strides=(2, 2), ceil_mode=1)),
    "ceil_pad": ((1, 2, 7, 9), A.MaxPoolAttrs(kernel_shape=(2, 3), strides=(2, 3), pads=(1, 1, 1, 1),
                                              ceil_mode=1)),
    # the last ceil window would start in the end padding: it is dropped
    "ceil_drop": ((1, 1, 5, 5), A.MaxPoolAttrs(kernel_shape=(2, 2), strides=(2, 2), pads=(1, 1, 1, 1),
                                               ceil_mode=1)),
    "same_upper": ((1, 2, 7, 8), A.MaxPoolAttrs(kernel_shape=(3, 2), strides=(2, 2), auto_pad="SAME_UPPER")),
    "same_lower": ((1, 2, 7, 8), A.MaxPoolAttrs(kernel_shape=(3, 2), strides=(2, 2), auto_pad="SAME_LOWER")),
    "valid": ((1, 2, 7, 8), A.MaxPoolAttrs(kernel_shape=(3, 2), strides=(2, 2), auto_pad="VALID")),
    "3d": ((1, 2, 5, 6, 4), A.MaxPoolAttrs(kernel_shape=(2, 3, 2), strides=(2, 1, 2),
                                           pads=(0, 1, 1, 1, 1, 0))),
}


@pytest.mark.parametrize("case", MAX_POOL_CASES)
def test_max_pool(case):
    shape, attrs = MAX_POOL_CASES[case]
    # all-negative input: a pad that leaked in as 0 would win the max
    check_op(Op.MaxPool, [-np.abs(randn(*shape)) - 0.1], attrs)


def test_max_pool_uint8():
    x = np.random.default_rng(0).integers(0, 255, (1, 2, 6, 6), dtype=np.uint8)
    check_op(Op.MaxPool, [x], A.MaxPoolAttrs(kernel_shape=(3, 3), pads=(1, 1, 1, 1)))


def test_max_pool_indices_unsupported():
    with pytest.raises(InterpreterError, match="Indices"):
        run_ir(Op.MaxPool, [randn(1, 1, 4, 4)], A.MaxPoolAttrs(kernel_shape=(2, 2)), n_outputs=2)


AVG_POOL_CASES = {
    "1d": ((2, 3, 11), A.AveragePoolAttrs(kernel_shape=(3,), strides=(2,))),
    "2d": ((2, 3, 8, 9), A.AveragePoolAttrs(kernel_shape=(2, 3), strides=(2, 3))),
    "pad": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))),
    "pad_inc": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1),
                                                 count_include_pad=1)),
    "asym_pad_inc": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 2), pads=(0, 1, 2, 0),
                                                      count_include_pad=1)),
    "ceil": ((1, 2, 8, 8), A.AveragePoolAttrs(kernel_shape=(3, 3), strides=(2, 2), ceil_mode=1)),
    "ceil_pad": ((1, 2, 7, 9), A.AveragePoolAttrs(kernel_shape=(2, 3), strides=(2, 3), pads=(1, 1, 1, 1),
                                                  ceil_mode=1)),
    "ceil_pad_inc": ((1, 2, 7, 9), A.AveragePoolAttrs(kernel_shape=(2, 3), strides=(2, 3), pads=(1, 1, 1, 1),
                                                      ceil_mode=1, count_include_pad=1)),
    "same_upper": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 2), strides=(2, 2),
                                                    auto_pad="SAME_UPPER")),
    "same_lower_inc": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 2), strides=(2, 2),
                                                        auto_pad="SAME_LOWER", count_include_pad=1)),
    "valid": ((1, 2, 7, 8), A.AveragePoolAttrs(kernel_shape=(3, 2), strides=(2, 2), auto_pad="VALID")),
    "dilated": ((1, 2, 9, 9), A.AveragePoolAttrs(kernel_shape=(2, 2), dilations=(2, 3), pads=(1, 1, 1, 1))),
    "3d": ((1, 2, 5, 6, 4), A.AveragePoolAttrs(kernel_shape=(2, 3, 2), strides=(2, 1, 2))),
}


@pytest.mark.parametrize("case", AVG_POOL_CASES)
def test_average_pool(case):
    shape, attrs = AVG_POOL_CASES[case]
    check_op(Op.AveragePool, [randn(*shape)], attrs, **TOL)


@pytest.mark.parametrize("op", [Op.GlobalAveragePool, Op.GlobalMaxPool])
@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 3, 4, 5), (1, 2, 3, 4, 5)])
def test_global_pool(op, shape):
    check_op(op, [randn(*shape)], **TOL)


# ---- normalization -------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 5), (2, 3, 4, 5)])
def test_batch_normalization(shape):
    c = shape[1]
    var = np.abs(randn(c, seed=4)) + 0.1
    inputs = [randn(*shape), randn(c, seed=1), randn(c, seed=2), randn(c, seed=3), var]
    check_op(Op.BatchNormalization, inputs, A.BatchNormalizationAttrs(epsilon=1e-3),
             const_inputs={1, 2, 3, 4}, **TOL)


def test_batch_normalization_training_mode_rejected():
    c = np.ones(3, np.float32)
    with pytest.raises(InterpreterError, match="training"):
        run_ir(Op.BatchNormalization, [randn(2, 3, 4), c, c, c, c],
               A.BatchNormalizationAttrs(training_mode=1), const_inputs={1, 2, 3, 4})


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 4, 5)])
def test_instance_normalization(shape):
    c = shape[1]
    check_op(Op.InstanceNormalization, [randn(*shape) * 3 + 1, randn(c, seed=1), randn(c, seed=2)],
             A.InstanceNormalizationAttrs(epsilon=1e-3), const_inputs={1, 2}, **TOL)


@pytest.mark.parametrize("axis, bias", [(-1, True), (-1, False), (1, True), (-2, True), (0, False)])
def test_layer_normalization(axis, bias):
    x = randn(2, 3, 8) * 2 + 0.5
    norm = x.shape[axis % 3:]
    inputs = [x, randn(*norm, seed=1), randn(*norm, seed=2) if bias else None]
    outs = check_op(Op.LayerNormalization, inputs, A.LayerNormalizationAttrs(axis=axis, epsilon=1e-4),
                    n_outputs=3, const_inputs={1, 2}, **TOL)
    assert outs[1].dtype == outs[2].dtype == np.float32


def test_layer_normalization_stats_follow_stash_type():
    x = randn(2, 8, dtype=np.float64)
    outs = check_op(Op.LayerNormalization, [x, np.ones(8, np.float64)], n_outputs=3,
                    const_inputs={1}, atol=1e-10, rtol=1e-10)
    assert [o.dtype for o in outs] == [np.float64, np.float32, np.float32]


def test_layer_normalization_half():
    x = randn(2, 16, dtype=np.float16)
    check_op(Op.LayerNormalization, [x, np.ones(16, np.float16)], n_outputs=3, const_inputs={1},
             atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("shape, groups", [
    ((2, 6, 5), 3), ((2, 4, 3, 3), 2), ((1, 4, 3, 3), 4), ((1, 4, 5), 1)])
def test_group_normalization(shape, groups):
    c = shape[1]
    check_op(Op.GroupNormalization, [randn(*shape) * 2 + 1, randn(c, seed=1), randn(c, seed=2)],
             A.GroupNormalizationAttrs(num_groups=groups, epsilon=1e-3), const_inputs={1, 2}, **TOL)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(p, axis):
    x = randn(3, 4, 5)
    x[1, 2] = 0  # a zero vector along the last axis
    check_op(Op.LpNormalization, [x], A.LpNormalizationAttrs(axis=axis, p=p), **TOL)


# ---- space/depth ---------------------------------------------------------
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    x = np.arange(2 * 8 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 3)
    check_op(Op.DepthToSpace, [x], A.DepthToSpaceAttrs(blocksize=2, mode=mode))


@pytest.mark.parametrize("blocksize", [2, 3])
def test_space_to_depth(blocksize):
    x = np.arange(2 * 3 * 6 * 12, dtype=np.float32).reshape(2, 3, 6, 12)
    check_op(Op.SpaceToDepth, [x], A.SpaceToDepthAttrs(blocksize=blocksize))


def test_depth_space_round_trip():
    x = randn(1, 12, 3, 4)
    y = run_ir(Op.SpaceToDepth, run_ir(Op.DepthToSpace, [x], A.DepthToSpaceAttrs(blocksize=2)),
               A.SpaceToDepthAttrs(blocksize=2))[0]
    np.testing.assert_array_equal(y, x)


# ---- Resize --------------------------------------------------------------
COORD_MODES = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"]
NEAREST_MODES = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [np.array([1, 1, 2, 3], np.float32), np.array([1, 1, 0.5, 0.75], np.float32),
          np.array([1, 1, 1.5, 0.6], np.float32)]


def resize(x, attrs, roi=None, scales=None, sizes=None, **tol):
    return check_op(Op.Resize, [x, roi, scales, sizes], attrs, const_inputs={1, 2, 3}, **(tol or TOL))


@pytest.mark.parametrize("scales", range(len(SCALES)))
@pytest.mark.parametrize("nearest_mode", NEAREST_MODES)
@pytest.mark.parametrize("coord", COORD_MODES)
def test_resize_nearest(coord, nearest_mode, scales):
    attrs = A.ResizeAttrs(mode="nearest", coordinate_transformation_mode=coord, nearest_mode=nearest_mode)
    resize(randn(1, 2, 4, 5), attrs, scales=SCALES[scales])


@pytest.mark.parametrize("scales", range(len(SCALES)))
@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("coord", COORD_MODES)
def test_resize_interpolating(coord, mode, scales):
    attrs = A.ResizeAttrs(mode=mode, coordinate_transformation_mode=coord)
    resize(randn(1, 2, 4, 5), attrs, scales=SCALES[scales])


@pytest.mark.parametrize("attrs", [
    A.ResizeAttrs(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),
    A.ResizeAttrs(mode="cubic", cubic_coeff_a=-0.5, coordinate_transformation_mode="align_corners"),
    A.ResizeAttrs(mode="linear", axes=(2, 3)),
    A.ResizeAttrs(mode="nearest", axes=(-1,)),
])
def test_resize_attrs(attrs):
    n = len(attrs.axes) if attrs.axes else 4
    resize(randn(2, 3, 5, 6), attrs, scales=np.array([1, 1, 1.6, 0.5], np.float32)[-n:])


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("sizes", [(2, 3, 8, 3), (2, 3, 1, 1), (2, 3, 7, 12)])
def test_resize_sizes(mode, sizes):
    resize(randn(2, 3, 5, 6), A.ResizeAttrs(mode=mode), sizes=np.array(sizes, np.int64))


def test_resize_nearest_every_axis():
    resize(randn(2, 3, 5, 6), A.ResizeAttrs(), sizes=np.array([3, 5, 4, 9], np.int64))


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_3d(mode):
    # onnxruntime's cubic takes 2-D or 4-D inputs only, so it has no case here
    resize(randn(1, 2, 3, 4, 6), A.ResizeAttrs(mode=mode), scales=np.array([1, 1, 2, 1.5, 0.5], np.float32))


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
def test_resize_keep_aspect_ratio(policy):
    attrs = A.ResizeAttrs(mode="linear", axes=(2, 3), keep_aspect_ratio_policy=policy)
    check_op(Op.Resize, [randn(1, 2, 4, 6), None, None, np.array([7, 8], np.int64)], attrs,
             const_inputs={3}, **TOL)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize(mode):
    attrs = A.ResizeAttrs(mode=mode, coordinate_transformation_mode="tf_crop_and_resize",
                          extrapolation_value=-7.0, axes=(2, 3))
    roi = np.array([0.2, -0.3, 0.9, 1.2], np.float32)
    resize(randn(1, 2, 6, 5), attrs, roi=roi, sizes=np.array([5, 7], np.int64))
    resize(randn(1, 2, 6, 5), attrs, roi=roi, scales=np.array([2, 1.5], np.float32))


def test_resize_nearest_integer():
    x = np.arange(24, dtype=np.int32).reshape(1, 2, 3, 4)
    resize(x, A.ResizeAttrs(), scales=np.array([1, 1, 2, 1.5], np.float32))


@pytest.mark.parametrize("exclude_outside", [0, 1])
@pytest.mark.parametrize("coord", ["half_pixel", "align_corners"])
@pytest.mark.parametrize("scales", [(1, 1, 0.5, 0.3), (1, 1, 0.75, 2)])
@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_antialias(mode, scales, coord, exclude_outside):
    attrs = A.ResizeAttrs(mode=mode, antialias=1, coordinate_transformation_mode=coord,
                          exclude_outside=exclude_outside)
    resize(randn(1, 2, 12, 10), attrs, scales=np.array(scales, np.float32))


# ---- float64 runs of float32 graphs --------------------------------------
@pytest.mark.parametrize("op, inputs, attrs", [
    (Op.Conv, [randn(1, 4, 6, 7), randn(6, 2, 3, 3, seed=1), randn(6, seed=2)],
     A.ConvAttrs(group=2, pads=(1, 1, 1, 1))),
    (Op.ConvTranspose, [randn(1, 2, 4, 5), randn(2, 3, 3, 3, seed=1)], A.ConvTransposeAttrs(strides=(2, 2))),
    (Op.AveragePool, [randn(1, 2, 7, 8)], A.AveragePoolAttrs(kernel_shape=(3, 3), pads=(1, 1, 1, 1))),
    (Op.LayerNormalization, [randn(2, 8), randn(8, seed=1), randn(8, seed=2)], A.LayerNormalizationAttrs()),
    (Op.GroupNormalization, [randn(2, 4, 5), randn(4, seed=1), randn(4, seed=2)],
     A.GroupNormalizationAttrs(num_groups=2)),
    (Op.Resize, [randn(1, 2, 4, 5), None, np.array([1, 1, 1.5, 0.6], np.float32)],
     A.ResizeAttrs(mode="cubic")),
    (Op.Gemm, [randn(3, 4), randn(4, 5, seed=1), randn(5, seed=2)], A.GemmAttrs(alpha=0.5, beta=2.0)),
])
def test_float64_mode(op, inputs, attrs):
    """With float_dtype=float64 no reference narrows back to float32."""
    g = Graph("one")
    values = [None if a is None else g.add_constant(a, f"in{i}") for i, a in enumerate(inputs)]
    node = g.make_node(op, values, attrs)
    g.outputs.append(node.outputs[0])
    ours = run(g, {}, float_dtype=np.float64)[node.outputs[0].name]
    want = check_op(op, inputs, attrs, const_inputs=set(range(len(inputs))), **TOL)[0]
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, want, **TOL)
