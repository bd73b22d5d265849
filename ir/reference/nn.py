"""Neural-network ops: matrix products, convolution, pooling, normalization, resampling, Einsum.

Convolution and pooling share one window machinery: the input is padded, viewed
as ``[N, C, *out, *kernel]`` with ``sliding_window_view`` and reduced (im2col +
batched matmul for Conv, max/sum for pools), so no Python loop runs over pixels.
"""
from __future__ import annotations

import math
import string

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..dtype import DType
from ..op import Op
from .registry import reference


# ---- matrix products -----------------------------------------------------
@reference(Op.MatMul)
def matmul(attrs, a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("MatMul operands must have rank >= 1")
    return np.matmul(a, b)


@reference(Op.Gemm)
def gemm(attrs, a, b, c=None):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"Gemm takes 2-D A and B, got shapes {list(a.shape)} and {list(b.shape)}")
    a2 = a.T if attrs.transA else a
    b2 = b.T if attrs.transB else b
    y = attrs.alpha * (a2 @ b2)
    if c is not None:
        y = y + attrs.beta * c
    # alpha/beta are Python floats: keep integer Gemm integer
    return y.astype(a.dtype, copy=False)


@reference(Op.Einsum)
def einsum(attrs, *inputs):
    eq = attrs.equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(inputs):
        raise ValueError(f"Einsum equation {attrs.equation!r} has {len(terms)} operands, "
                         f"the node has {len(inputs)} inputs")
    for term, x in zip(terms + ([rhs] if arrow else []), inputs + (None,)):
        letters = term.replace("...", "")
        if not all(ch in string.ascii_letters for ch in letters) or term.count("...") > 1:
            raise ValueError(f"Einsum term {term!r} of {attrs.equation!r}: only letters and one '...'")
        if x is not None and (len(letters) > x.ndim or ("..." not in term and len(letters) != x.ndim)):
            raise ValueError(f"Einsum term {term!r} does not match an operand of rank {x.ndim}")
    if arrow and len(set(rhs.replace("...", ""))) != len(rhs.replace("...", "")):
        raise ValueError(f"Einsum output {rhs!r} repeats a letter")
    out = np.einsum(eq, *inputs, optimize=True)
    return np.asarray(out).astype(inputs[0].dtype, copy=False)


# ---- window geometry shared by Conv and the pools ------------------------
def _pads(attrs, spatial, strides, eff) -> tuple[list[int], list[int]]:
    """(begin, end) pads per spatial axis after resolving auto_pad."""
    n = len(spatial)
    mode = attrs.auto_pad
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for d, s, e in zip(spatial, strides, eff):
            total = max((-(-d // s) - 1) * s + e - d, 0)
            small, big = total // 2, total - total // 2
            # SAME_UPPER puts the odd extra pad at the end, SAME_LOWER at the beginning
            begin.append(small if mode == "SAME_UPPER" else big)
            end.append(big if mode == "SAME_UPPER" else small)
        return begin, end
    if mode == "VALID":
        return [0] * n, [0] * n
    if mode != "NOTSET":
        raise ValueError(f"unknown auto_pad {mode!r}")
    pads = attrs.pads or (0,) * (2 * n)
    if len(pads) != 2 * n:
        raise ValueError(f"pads {list(pads)} must have {2 * n} entries")
    return list(pads[:n]), list(pads[n:])


def _geometry(attrs, spatial, kernel, ceil_mode=0):
    """strides, dilations, effective kernel extents, begin pads and output sizes."""
    n = len(spatial)
    strides = tuple(attrs.strides or (1,) * n)
    dil = tuple(attrs.dilations or (1,) * n)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    begin, end = _pads(attrs, spatial, strides, eff)
    out = []
    for d, s, e, b, p in zip(spatial, strides, eff, begin, end):
        span = d + b + p - e
        if span < 0:
            raise ValueError(f"kernel extent {e} exceeds padded input size {d + b + p}")
        if ceil_mode:
            size = -(-span // s) + 1
            # a window that would start in the end padding or beyond is dropped
            if (size - 1) * s >= d + b:
                size -= 1
        else:
            size = span // s + 1
        out.append(size)
    return strides, dil, eff, begin, out


def _windows(x, begin, out, strides, dil, eff, fill):
    """View ``x`` [N, C, *spatial] as [N, C, *out, *kernel]; reads outside x give ``fill``.

    Window o on axis i reads padded positions o*stride + k*dilation, k < kernel.
    """
    n = len(out)
    need = [(o - 1) * s + e for o, s, e in zip(out, strides, eff)]
    width = [(0, 0), (0, 0)] + [(b, max(nd - b - d, 0))
                                for b, nd, d in zip(begin, need, x.shape[2:])]
    xp = np.pad(x, width, constant_values=fill)
    xp = xp[(slice(None), slice(None)) + tuple(slice(0, nd) for nd in need)]
    view = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + n)))
    index = ((slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
             + tuple(slice(None, None, d) for d in dil))
    return view[index]


def _check_kernel(attrs, kernel):
    if attrs.kernel_shape is not None and tuple(attrs.kernel_shape) != tuple(kernel):
        raise ValueError(f"kernel_shape {list(attrs.kernel_shape)} disagrees with the weight's "
                         f"spatial shape {list(kernel)}")


def _bias_shape(n_spatial):
    return (1, -1) + (1,) * n_spatial


# ---- convolution ---------------------------------------------------------
@reference(Op.Conv)
def conv(attrs, x, w, bias=None):
    n = x.ndim - 2
    batch, channels = x.shape[:2]
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    g = attrs.group
    _check_kernel(attrs, kernel)
    if n < 1 or w.ndim != x.ndim or channels != cg * g or m % g:
        raise ValueError(f"Conv: X {list(x.shape)} and W {list(w.shape)} do not fit group={g}")
    strides, dil, eff, begin, out = _geometry(attrs, x.shape[2:], kernel)
    win = _windows(x, begin, out, strides, dil, eff, 0)
    positions, taps = math.prod(out), math.prod(kernel)
    # im2col per group: [N, G, positions, Cg*taps] @ [G, Cg*taps, M/G]
    win = win.reshape((batch, g, cg) + tuple(out) + tuple(kernel))
    perm = (0, 1) + tuple(range(3, 3 + n)) + (2,) + tuple(range(3 + n, 3 + 2 * n))
    cols = win.transpose(perm).reshape(batch, g, positions, cg * taps)
    wm = w.reshape(g, m // g, cg * taps).transpose(0, 2, 1)
    y = np.matmul(cols, wm).transpose(0, 1, 3, 2).reshape((batch, m) + tuple(out))
    if bias is not None:
        y = y + bias.reshape(_bias_shape(n))
    return y.astype(x.dtype, copy=False)


def _transpose_pads(attrs, spatial, strides, full):
    """(begin pads, output sizes) of ConvTranspose; ``full`` is the uncropped extent."""
    n = len(spatial)
    if attrs.output_shape:
        out = list(attrs.output_shape[-n:])
    elif attrs.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [d * s for d, s in zip(spatial, strides)]
    else:
        if attrs.auto_pad not in ("NOTSET", "VALID"):
            raise ValueError(f"unknown auto_pad {attrs.auto_pad!r}")
        pads = (attrs.pads if attrs.auto_pad == "NOTSET" else None) or (0,) * (2 * n)
        return list(pads[:n]), [f - pads[i] - pads[i + n] for i, f in enumerate(full)]
    begin = []
    for f, o in zip(full, out):
        total = max(f - o, 0)
        # the ONNX formula: SAME_UPPER crops the odd extra unit at the end
        begin.append(total // 2 if attrs.auto_pad == "SAME_UPPER" else total - total // 2)
    return begin, out


@reference(Op.ConvTranspose)
def conv_transpose(attrs, x, w, bias=None):
    n = x.ndim - 2
    batch, channels = x.shape[:2]
    g = attrs.group
    mg = w.shape[1]
    kernel = w.shape[2:]
    _check_kernel(attrs, kernel)
    if n < 1 or w.ndim != x.ndim or w.shape[0] != channels or channels % g:
        raise ValueError(f"ConvTranspose: X {list(x.shape)} and W {list(w.shape)} do not fit group={g}")
    spatial = x.shape[2:]
    strides = tuple(attrs.strides or (1,) * n)
    dil = tuple(attrs.dilations or (1,) * n)
    opad = tuple(attrs.output_padding or (0,) * n)
    reach = [(d - 1) * s + (k - 1) * dl + 1 for d, s, k, dl in zip(spatial, strides, kernel, dil)]
    full = [r + p for r, p in zip(reach, opad)]
    begin, out = _transpose_pads(attrs, spatial, strides, full)
    cg = channels // g
    xs = x.reshape(batch, g, cg, -1).transpose(0, 1, 3, 2)                   # [N, G, P, Cg]
    ws = w.reshape(g, cg, mg * math.prod(kernel))                           # [G, Cg, Mg*taps]
    contrib = np.matmul(xs, ws).reshape((batch, g, -1, mg) + tuple(kernel))  # [N, G, P, Mg, *K]
    contrib = np.moveaxis(contrib, 2, 3).reshape((batch, g, mg) + tuple(spatial) + tuple(kernel))
    # scatter-add each kernel tap (a small loop over taps, not pixels)
    size = [max(r, b + o) for r, b, o in zip(reach, begin, out)]
    buf = np.zeros((batch, g, mg) + tuple(size), dtype=contrib.dtype)
    for tap in np.ndindex(*kernel):
        dst = tuple(slice(k * dl, k * dl + (d - 1) * s + 1, s)
                    for k, dl, d, s in zip(tap, dil, spatial, strides))
        buf[(Ellipsis,) + dst] += contrib[(Ellipsis,) + tap]
    y = buf[(Ellipsis,) + tuple(slice(b, b + o) for b, o in zip(begin, out))]
    y = y.reshape((batch, g * mg) + tuple(out))
    if bias is not None:
        y = y + bias.reshape(_bias_shape(n))
    return y.astype(x.dtype, copy=False)


# ---- pooling -------------------------------------------------------------
@reference(Op.MaxPool, needs_outputs=True)
def max_pool(attrs, x, *, n_outputs):
    if n_outputs > 1:
        raise NotImplementedError("MaxPool's second output (Indices) is not supported by the "
                                  "reference interpreter")
    n = x.ndim - 2
    strides, dil, eff, begin, out = _geometry(attrs, x.shape[2:], attrs.kernel_shape, attrs.ceil_mode)
    low = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    win = _windows(x, begin, out, strides, dil, eff, low)
    return win.max(axis=tuple(range(2 + n, 2 + 2 * n)))


@reference(Op.AveragePool)
def average_pool(attrs, x):
    n = x.ndim - 2
    spatial = x.shape[2:]
    strides, dil, eff, begin, out = _geometry(attrs, spatial, attrs.kernel_shape, attrs.ceil_mode)
    kaxes = tuple(range(2 + n, 2 + 2 * n))
    total = _windows(x, begin, out, strides, dil, eff, 0).sum(axis=kaxes)
    # the divisor counts the cells each window reads: real input only, or input plus the
    # explicit/auto pads (never the extra cells ceil_mode reads past them)
    ones = np.ones((1, 1) + tuple(spatial), dtype=x.dtype)
    if attrs.count_include_pad:
        _, end = _pads(attrs, spatial, strides, eff)
        ones = np.pad(ones, [(0, 0), (0, 0)] + list(zip(begin, end)), constant_values=1)
        begin = [0] * n
    count = _windows(ones, begin, out, strides, dil, eff, 0).sum(axis=kaxes)
    return (total / count).astype(x.dtype, copy=False)


@reference(Op.GlobalAveragePool)
def global_average_pool(attrs, x):
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


@reference(Op.GlobalMaxPool)
def global_max_pool(attrs, x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ---- normalization -------------------------------------------------------
def _stat_dtype(x, stash_type=DType.FLOAT.value):
    """Statistics are computed in the stash type or the input's type, whichever is wider."""
    return np.promote_types(x.dtype, DType.from_onnx(stash_type).numpy)


@reference(Op.BatchNormalization, needs_outputs=True)
def batch_normalization(attrs, x, scale, b, mean, var, *, n_outputs):
    if attrs.training_mode or n_outputs > 1:
        raise NotImplementedError("BatchNormalization in training mode (training_mode=1 or the "
                                  "running-statistics outputs) is not supported; export for inference")
    shape = _bias_shape(x.ndim - 2)
    inv = 1 / np.sqrt(var.astype(x.dtype) + attrs.epsilon)
    y = (x - mean.reshape(shape)) * (scale * inv).reshape(shape) + b.reshape(shape)
    return y.astype(x.dtype, copy=False)


def _normalize(x, axes, epsilon, dtype):
    """(x - mean) / sqrt(var + eps), mean and 1/sqrt(var + eps), all in ``dtype``."""
    xc = x.astype(dtype, copy=False)
    mean = xc.mean(axis=axes, keepdims=True)
    centered = xc - mean
    inv = 1 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + epsilon)
    return centered * inv, mean, inv


@reference(Op.InstanceNormalization)
def instance_normalization(attrs, x, scale, b):
    y, _, _ = _normalize(x, tuple(range(2, x.ndim)), attrs.epsilon, _stat_dtype(x))
    shape = _bias_shape(x.ndim - 2)
    return (y * scale.reshape(shape) + b.reshape(shape)).astype(x.dtype, copy=False)


@reference(Op.LayerNormalization)
def layer_normalization(attrs, x, scale, bias=None):
    if not -x.ndim <= attrs.axis < x.ndim:
        raise ValueError(f"axis {attrs.axis} is out of range for rank {x.ndim}")
    axes = tuple(range(attrs.axis % x.ndim, x.ndim))
    y, mean, inv = _normalize(x, axes, attrs.epsilon, _stat_dtype(x, attrs.stash_type))
    y = y * scale
    if bias is not None:
        y = y + bias
    # ONNX types Mean and InvStdDev by stash_type even for double inputs (onnxruntime agrees)
    stash = DType.from_onnx(attrs.stash_type).numpy
    return y.astype(x.dtype, copy=False), mean.astype(stash), inv.astype(stash)


@reference(Op.GroupNormalization)
def group_normalization(attrs, x, scale, bias):
    batch, channels = x.shape[:2]
    groups = attrs.num_groups
    if channels % groups or scale.shape != (channels,) or bias.shape != (channels,):
        raise ValueError(f"GroupNormalization: {channels} channels, num_groups={groups}, scale "
                         f"{list(scale.shape)} and bias {list(bias.shape)} (opset 21: per channel)")
    grouped = x.reshape(batch, groups, -1)
    y, _, _ = _normalize(grouped, (2,), attrs.epsilon, _stat_dtype(x, attrs.stash_type))
    shape = _bias_shape(x.ndim - 2)
    y = y.reshape(x.shape) * scale.reshape(shape) + bias.reshape(shape)
    return y.astype(x.dtype, copy=False)


@reference(Op.LpNormalization)
def lp_normalization(attrs, x):
    if attrs.p == 1:
        norm = np.abs(x).sum(axis=attrs.axis, keepdims=True)
    elif attrs.p == 2:
        norm = np.sqrt((x * x).sum(axis=attrs.axis, keepdims=True))
    else:
        raise ValueError(f"LpNormalization p must be 1 or 2, got {attrs.p}")
    # a zero vector stays zero (onnxruntime does the same) instead of becoming NaN
    return np.where(norm == 0, 0, x / np.where(norm == 0, 1, norm)).astype(x.dtype, copy=False)


# ---- space/depth rearrangement -------------------------------------------
@reference(Op.DepthToSpace)
def depth_to_space(attrs, x):
    n, c, h, w = x.shape
    b = attrs.blocksize
    if c % (b * b):
        raise ValueError(f"DepthToSpace: {c} channels are not divisible by blocksize^2={b * b}")
    if attrs.mode == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif attrs.mode == "CRD":
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"DepthToSpace mode must be DCR or CRD, got {attrs.mode!r}")
    return y.reshape(n, c // (b * b), h * b, w * b)


@reference(Op.SpaceToDepth)
def space_to_depth(attrs, x):
    n, c, h, w = x.shape
    b = attrs.blocksize
    if h % b or w % b:
        raise ValueError(f"SpaceToDepth: spatial {h}x{w} is not divisible by blocksize {b}")
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


# ---- Resize --------------------------------------------------------------
_ROUND = {
    "round_prefer_floor": lambda c: np.ceil(c - 0.5),
    "round_prefer_ceil": lambda c: np.floor(c + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def _source_coords(mode, out_size, in_size, scale, start, end):
    """Where each output index samples the input along one axis.

    float32 arithmetic, in onnxruntime's order of operations: a scale such as 0.6f makes
    (1 + 0.5) / scale - 0.5 land on 2.0 in float32 but on 1.9999999 in float64, and
    nearest rounding must agree with onnxruntime on such ties.
    """
    f32 = np.float32
    xr = np.arange(out_size, dtype=f32)
    scale, start, end = f32(scale), f32(start), f32(end)
    half = f32(0.5)
    if mode == "half_pixel":
        return (xr + half) / scale - half
    if mode == "half_pixel_symmetric":
        adjustment = f32(out_size) / (scale * f32(in_size))
        offset = f32(in_size) / f32(2) * (f32(1) - adjustment)
        # onnxruntime evaluates this one sum in double precision before rounding it to float
        return (np.float64(offset) + (xr + 0.5) / np.float64(scale) - 0.5).astype(f32)
    if mode == "pytorch_half_pixel":
        return (xr + half) / scale - half if out_size > 1 else np.zeros(out_size, f32)
    if mode == "align_corners":
        return xr * f32(in_size - 1) / f32(out_size - 1) if out_size > 1 else np.zeros(out_size, f32)
    if mode == "asymmetric":
        return xr / scale
    if mode == "tf_crop_and_resize":
        if out_size > 1:
            return start * f32(in_size - 1) + xr * (end - start) * f32(in_size - 1) / f32(out_size - 1)
        return np.full(out_size, half * (start + end) * f32(in_size - 1), f32)
    raise ValueError(f"unknown coordinate_transformation_mode {mode!r}")


def _cubic_kernel(t, a):
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _taps(attrs, coords, in_size, scale):
    """(input indices [out, T], weights [out, T]) of the linear or cubic filter on one axis.

    With antialias a downscaling filter is stretched by 1/scale, so it averages every
    input cell it covers.
    """
    coords = coords.astype(np.float64)
    stretch = max(1.0, 1.0 / scale) if attrs.antialias else 1.0
    reach = (1 if attrs.mode == "linear" else 2) * stretch
    base = np.floor(coords).astype(np.int64)
    offsets = np.arange(1 - math.ceil(reach), math.ceil(reach) + 1)
    idx = base[:, None] + offsets[None, :]
    dist = (coords[:, None] - idx) / stretch
    if attrs.mode == "linear":
        weights = np.maximum(1 - np.abs(dist), 0)
    else:
        weights = _cubic_kernel(dist, attrs.cubic_coeff_a)
    if attrs.exclude_outside:
        weights = np.where((idx >= 0) & (idx < in_size), weights, 0.0)
    if attrs.exclude_outside or attrs.antialias:
        # a stretched kernel sampled at cell centers does not sum to 1 by itself
        weights = weights / weights.sum(axis=1, keepdims=True)
    # taps left past the border read the edge value
    return np.clip(idx, 0, in_size - 1), weights


def _resize_plan(attrs, x, roi, scales, sizes):
    """Per resized axis: (axis, output size, scale, roi start, roi end)."""
    rank = x.ndim
    axes = [a % rank for a in attrs.axes] if attrs.axes else list(range(rank))
    has_scales = scales is not None and scales.size > 0
    has_sizes = sizes is not None and sizes.size > 0
    if has_scales == has_sizes:
        raise ValueError("Resize takes exactly one of scales and sizes")
    count = scales.size if has_scales else sizes.size
    if count != len(axes):
        raise ValueError(f"Resize: {count} scales/sizes for {len(axes)} axes")
    crop = attrs.coordinate_transformation_mode == "tf_crop_and_resize"
    if crop and (roi is None or roi.size != 2 * len(axes)):
        raise ValueError("tf_crop_and_resize needs roi = [starts..., ends...] for the resized axes")
    starts = roi.reshape(-1)[: len(axes)] if crop else np.zeros(len(axes))
    ends = roi.reshape(-1)[len(axes):] if crop else np.ones(len(axes))
    ins = [x.shape[a] for a in axes]
    if has_scales:
        factors = [float(s) for s in scales.reshape(-1)]
        # the ONNX text scales by (roi_end - roi_start) too, but its shape inference, its
        # reference evaluator and onnxruntime all ignore the roi here: so do we
        outs = [int(math.floor(d * f)) for d, f in zip(ins, factors)]
    else:
        outs = [int(s) for s in sizes.reshape(-1)]
        policy = attrs.keep_aspect_ratio_policy
        ratios = [float(np.float32(o) / np.float32(d)) for o, d in zip(outs, ins)]
        if policy == "stretch":
            factors = ratios
        elif policy in ("not_larger", "not_smaller"):
            common = min(ratios) if policy == "not_larger" else max(ratios)
            factors = [common] * len(axes)
            outs = [int(math.floor(d * common + 0.5)) for d in ins]
        else:
            raise ValueError(f"unknown keep_aspect_ratio_policy {policy!r}")
    return list(zip(axes, outs, factors, map(float, starts), map(float, ends)))


@reference(Op.Resize)
def resize(attrs, x, roi=None, scales=None, sizes=None):
    if attrs.mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"unknown Resize mode {attrs.mode!r}")
    if attrs.mode != "nearest" and x.dtype.kind != "f":
        raise NotImplementedError(f"Resize {attrs.mode} on {x.dtype} input is not supported")
    if attrs.mode == "nearest" and attrs.nearest_mode not in _ROUND:
        raise ValueError(f"unknown nearest_mode {attrs.nearest_mode!r}")
    y = x
    outside = np.zeros((1,) * x.ndim, dtype=bool)
    for axis, out, scale, start, end in _resize_plan(attrs, x, roi, scales, sizes):
        in_size = x.shape[axis]
        coords = _source_coords(attrs.coordinate_transformation_mode, out, in_size, scale, start, end)
        bshape = [1] * x.ndim
        bshape[axis] = out
        outside = outside | ((coords < 0) | (coords > in_size - 1)).reshape(bshape)
        if attrs.mode == "nearest":
            idx = np.clip(_ROUND[attrs.nearest_mode](coords), 0, in_size - 1).astype(np.int64)
            y = np.take(y, idx, axis=axis)
            continue
        idx, weights = _taps(attrs, coords, in_size, scale)
        acc = 0
        for t in range(idx.shape[1]):
            acc = acc + np.take(y, idx[:, t], axis=axis) * weights[:, t].reshape(bshape)
        y = acc
    if attrs.coordinate_transformation_mode == "tf_crop_and_resize":
        y = np.where(outside, attrs.extrapolation_value, y)
    return np.asarray(y).astype(x.dtype, copy=False)
