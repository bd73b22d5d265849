"""Matrix products, convolution, pooling, attention and rotary embedding: calls into the kernels.

Conv and pool geometry (auto_pad, ceil_mode, output sizes) comes from the reference
interpreter's own helpers, so the C code and the reference cannot disagree on a size.
Every argument of a kernel call is a compile-time constant except the data pointers.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtype import DType
from ...ir.op import Op
from ...ir.reference.nn import _geometry, _pads
from .ctext import c_float
from .lowering import Emitter, contiguous_strides, numel, rule
from .loops import broadcast_strides, emit_map, index_expr, loop_nest, simplify

ACTIVATIONS = {"none": "0", "relu": "ff_act_relu", "gelu": "ff_act_gelu",
               "gelu_tanh": "ff_act_gelu_tanh", "silu": "ff_act_silu", "sigmoid": "ff_act_sigmoid",
               "tanh": "ff_act_tanh"}


def trailing_rows(e: Emitter, param, out_shape: tuple[int, ...], n: int, what: str) -> int:
    """Rows of a per-row operand (a residual, a skip) that repeats over the leading rows of
    ``out_shape``: its shape must be a suffix of ``out_shape`` (leading 1s aside)."""
    shape = list(e.shape(param))
    while shape and shape[0] == 1 and len(shape) > 1:
        shape.pop(0)
    if not shape or len(shape) > len(out_shape) or tuple(shape) != out_shape[len(out_shape) - len(shape):] \
            or shape[-1] != n:
        raise e.unsupported(f"{what} of shape {list(e.shape(param))} over {list(out_shape)} "
                            f"(it must repeat over the leading rows)")
    return numel(tuple(shape)) // n


def per_feature(e: Emitter, param, n: int, what: str) -> None:
    if param is not None and numel(e.shape(param)) != n:
        raise e.unsupported(f"{what} of shape {list(e.shape(param))} (must hold the {n} normalized "
                            f"elements)")


@rule(Op.Linear, alias={(0, 3)})
def linear(e: Emitter) -> None:
    x, w, b, r = e.inputs[0], e.inputs[1], e.input(2), e.input(3)
    y = e.outputs[0]
    e.require_float(x, w, b, r)
    xs, ws = e.shape(x), e.shape(w)
    if len(ws) != 2 or not xs or xs[-1] != ws[0]:
        raise e.unsupported(f"x {list(xs)} @ W {list(ws)} (W must be [K, N])")
    k, n = ws
    out = e.shape(y)
    per_feature(e, b, n, "bias")
    rows = trailing_rows(e, r, out, n, "residual") if r is not None else 1
    act = ACTIVATIONS[e.attrs.activation]
    if act != "0":
        e.kernel(act)
    e.kernel("ff_linear")
    e.line(f"ff_linear({numel(xs[:-1])}, {k}, {n}, {e.ptr(x)}, {e.ptr(w)}, {e.ptr(b)}, {e.ptr(r)}, "
           f"{rows}, {act}, {e.ptr(y)});")


def _batched_gemm(e: Emitter, a, a_batch, a_mat, b, b_batch, b_mat, y, out_batch, m, n, k,
                  a_strides, b_strides) -> None:
    """ff_gemm over each (broadcast) batch index; a_strides / b_strides are the in-matrix
    (row, col) strides of A [M, K] and B [K, N]."""
    ys = contiguous_strides(out_batch)
    asb = tuple(s * a_mat for s in broadcast_strides(a_batch, out_batch))
    bsb = tuple(s * b_mat for s in broadcast_strides(b_batch, out_batch))
    dims, (yst, ast, bst) = simplify(out_batch, [tuple(s * m * n for s in ys), asb, bsb])
    e.kernel("ff_gemm")
    with loop_nest(e, dims) as indices:
        def at(pointer: str, strides) -> str:
            index = index_expr(0, strides, indices)
            return pointer if index == "0" else f"{pointer} + {index}"

        e.line(f"ff_gemm({m}, {n}, {k}, {at(e.ptr(a), ast)}, {a_strides[0]}, {a_strides[1]}, "
               f"{at(e.ptr(b), bst)}, {b_strides[0]}, {b_strides[1]}, {at(e.ptr(y), yst)});")


@rule(Op.MatMul)
def matmul(e: Emitter) -> None:
    a, b, y = e.inputs[0], e.inputs[1], e.outputs[0]
    e.require_float(a, b)
    sa, sb = e.shape(a), e.shape(b)
    if not sa or not sb:
        raise e.unsupported("MatMul of a scalar")
    ma = sa if len(sa) > 1 else (1,) + sa  # a 1-D operand is a row (a) or a column (b)
    mb = sb if len(sb) > 1 else sb + (1,)
    m, k = ma[-2:]
    k2, n = mb[-2:]
    if k != k2:
        raise e.unsupported(f"MatMul {list(sa)} @ {list(sb)}")
    out_batch = tuple(np.broadcast_shapes(ma[:-2], mb[:-2]))
    _batched_gemm(e, a, ma[:-2], m * k, b, mb[:-2], k * n, y, out_batch, m, n, k, (k, 1), (n, 1))


@rule(Op.Gemm)
def gemm(e: Emitter) -> None:
    a, b, c, y = e.inputs[0], e.inputs[1], e.input(2), e.outputs[0]
    e.require_float(a, b, c)
    (ra, ca), (rb, cb) = e.shape(a), e.shape(b)
    m, k = (ca, ra) if e.attrs.transA else (ra, ca)
    n = rb if e.attrs.transB else cb
    # A[m, k] sits at m * ca + k (or transposed: k * ca + m)
    a_strides = (1, ca) if e.attrs.transA else (ca, 1)
    b_strides = (1, cb) if e.attrs.transB else (cb, 1)
    _batched_gemm(e, a, (), 0, b, (), 0, y, (), m, n, k, a_strides, b_strides)
    alpha, beta = float(e.attrs.alpha), float(e.attrs.beta)
    operands, expr = [("y", y)], "y" if alpha == 1.0 else f"{c_float(alpha)} * y"
    if c is not None and beta != 0.0:
        operands.append(("c", c))
        expr += " + c" if beta == 1.0 else f" + {c_float(beta)} * c"
    if len(operands) > 1 or alpha != 1.0:
        emit_map(e, y, operands, expr)


def _spatial(e: Emitter, shape: tuple[int, ...], what: str) -> tuple[int, int]:
    if len(shape) == 3:
        return 1, shape[2]
    if len(shape) == 4:
        return shape[2], shape[3]
    raise e.unsupported(f"{what} with {len(shape) - 2} spatial dims (1-D and 2-D only)")


def _pair(values, n_spatial: int, fill: int) -> tuple[int, int]:
    values = tuple(values)
    return (fill, values[0]) if n_spatial == 1 else (values[0], values[1])


@rule(Op.Conv)
def conv(e: Emitter) -> None:
    x, w, b, y = e.inputs[0], e.inputs[1], e.input(2), e.outputs[0]
    e.require_float(x, w, b)
    xs, wsh = e.shape(x), e.shape(w)
    h, wd = _spatial(e, xs, "Conv")
    nsp = len(xs) - 2
    kernel = wsh[2:]
    g = e.attrs.group
    if xs[1] != wsh[1] * g or wsh[0] % g:
        raise e.unsupported(f"X {list(xs)} and W {list(wsh)} do not fit group={g}")
    strides, dil, _, begin, out = _geometry(e.attrs, xs[2:], kernel)
    kh, kw = _pair(kernel, nsp, 1)
    sh, sw = _pair(strides, nsp, 1)
    dh, dw = _pair(dil, nsp, 1)
    ph, pw = _pair(begin, nsp, 0)
    oh, ow = _pair(out, nsp, 1)
    per_feature(e, b, wsh[0], "bias")
    e.kernel("ff_conv2d")
    e.line(f"ff_conv2d({xs[0]}, {xs[1]}, {h}, {wd}, {e.ptr(x)}, {wsh[0]}, {g}, {kh}, {kw}, {e.ptr(w)}, "
           f"{e.ptr(b)}, {sh}, {sw}, {dh}, {dw}, {ph}, {pw}, {oh}, {ow}, {e.ptr(y)});")


@rule(Op.MaxPool, Op.AveragePool)
def pool(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    if len(e.outputs) > 1:
        raise e.unsupported("MaxPool's Indices output")
    e.require_float(x)
    xs = e.shape(x)
    h, wd = _spatial(e, xs, e.node.op.value)
    nsp = len(xs) - 2
    strides, dil, eff, begin, out = _geometry(e.attrs, xs[2:], e.attrs.kernel_shape, e.attrs.ceil_mode)
    _, end = _pads(e.attrs, xs[2:], strides, eff)
    is_max = e.node.op is Op.MaxPool
    count_pad = 0 if is_max else e.attrs.count_include_pad
    kh, kw = _pair(e.attrs.kernel_shape, nsp, 1)
    sh, sw = _pair(strides, nsp, 1)
    dh, dw = _pair(dil, nsp, 1)
    ph, pw = _pair(begin, nsp, 0)
    eh, ew = _pair(end, nsp, 0)
    oh, ow = _pair(out, nsp, 1)
    e.kernel("ff_pool2d")
    e.line(f"ff_pool2d({xs[0] * xs[1]}, {h}, {wd}, {e.ptr(x)}, {kh}, {kw}, {sh}, {sw}, {dh}, {dw}, "
           f"{ph}, {pw}, {eh}, {ew}, {int(is_max)}, {count_pad}, {oh}, {ow}, {e.ptr(y)});")


@rule(Op.Attention)
def attention(e: Emitter) -> None:
    q, k, v, mask = e.inputs[0], e.inputs[1], e.inputs[2], e.input(3)
    y = e.outputs[0]
    e.require_float(q, k, v)
    qs, ks, vs = e.shape(q), e.shape(k), e.shape(v)
    if len(qs) != 4 or len(ks) != 4 or len(vs) != 4:
        raise e.unsupported("Attention on inputs not of rank 4 [batch, heads, seq, head_dim]")
    bsz, heads, sq, d = qs
    kvh, sk = ks[1], ks[2]
    if ks[0] != bsz or vs[:3] != ks[:3] or ks[3] != d or heads % kvh:
        raise e.unsupported(f"Attention q {list(qs)}, k {list(ks)}, v {list(vs)}")
    scale = e.attrs.scale if e.attrs.scale is not None else 1 / math.sqrt(d)
    bmask = amask = "0"
    strides = "0"
    if mask is not None:
        if mask.dtype is DType.BOOL:
            bmask = e.ptr(mask)
        elif mask.dtype is DType.FLOAT:
            amask = e.ptr(mask)
        else:
            raise e.unsupported(f"Attention mask of type {mask.dtype.short}")
        ms = broadcast_strides(e.shape(mask), (bsz, heads, sq, sk))
        strides = e.temp("ms")
        e.line(f"const long {strides}[4] = {{{', '.join(map(str, ms))}}};")
    e.kernel("ff_attention")
    e.line(f"ff_attention({bsz}, {heads}, {kvh}, {sq}, {sk}, {d}, {vs[3]}, {e.ptr(q)}, {e.ptr(k)}, "
           f"{e.ptr(v)}, {bmask}, {amask}, {strides}, {int(e.attrs.causal)}, {c_float(scale)}, "
           f"{e.ptr(y)});")


@rule(Op.RotaryEmbedding, alias={(0, 0)})
def rotary(e: Emitter) -> None:
    x, cos, sin, y = e.inputs[0], e.inputs[1], e.inputs[2], e.outputs[0]
    e.require_float(x, cos, sin)
    xs = e.shape(x)
    if len(xs) not in (3, 4) or xs[-1] % 2 or e.shape(cos)[-1] != xs[-1] or e.shape(sin)[-1] != xs[-1]:
        raise e.unsupported(f"RotaryEmbedding of x {list(xs)} with cos {list(e.shape(cos))}, sin "
                            f"{list(e.shape(sin))} (x of rank 3 or 4; cos and sin span its last axis)")
    full = (1,) * (4 - len(xs)) + xs
    names = []
    for v, hint in ((cos, "cs"), (sin, "ss")):
        strides = broadcast_strides(e.shape(v), full)[:3]
        names.append(e.temp(hint))
        e.line(f"const long {names[-1]}[3] = {{{', '.join(map(str, strides))}}};")
    e.kernel("ff_rotary")
    e.line(f"ff_rotary({full[0]}, {full[1]}, {full[2]}, {xs[-1]}, {e.ptr(x)}, {e.ptr(cos)}, "
           f"{e.ptr(sin)}, {names[0]}, {names[1]}, {int(e.attrs.interleaved)}, {e.ptr(y)});")
