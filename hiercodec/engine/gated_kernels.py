"""numba kernels of the exact gated PixelCNN (hiercodec.exact.pixelcnn): the same integer sums as
the torch reference, in int64 arithmetic on int16 operands, compiled to machine code.

One description of the network serves both directions: `row_pass` (the vertical stack of one row
and its links into the horizontal stack) and `step_block` (the horizontal stack and the head at
one position of a block of tiles, from cached rows). The decoder calls them row by row and position by position with
Python (the coder) in between; the encoder calls the same two functions over whole tiles in one
compiled loop (`encode_tiles`). Tiles are independent, so both loop over them with `prange`
(threads across tiles); the integers cannot depend on the thread count.

Layouts (channels last, rows interleaved within each column, all flat: a kernel's inputs at one
position are one contiguous run of a C-contiguous array, one dot product that the compiler
vectorizes):
  xc     (T, 2, 3 (W + 6) Cin) [0]: image rows i-3 .. i-1, index (3 col + row) Cin + cin;
                               [1]: row i (first (W + 6) Cin entries); 3 columns of zero padding
                               each side
  vc     (L, T, 2 (W + 2) C)   gated vertical outputs feeding gated layer l, rows i-1 and i, index
                               (2 col + row) C + c
  link   (L + 1, T, W, 2C)     unclamped link terms (and conditioning biases) of row i
  hrow   (L + 1, T, (W + 1) C) horizontal outputs of row i, column j at j + 1 (column 0 is padding)
  feat   (T, H, W, E)          conditioning features (int16), or (T, 1, 1, 0) for none
A layer's weights are (O, kh kw Cin) int16, columns in (dx, dy, cin) order.
Requantization y = floor(acc 2^-shift) is an arithmetic shift (left for a negative shift), as the
reference's multiplication by a power of two and floor.
"""

from __future__ import annotations

import numba as nb
import numpy as np

ACT_MIN, ACT_MAX = -2048, 2047
LUT = 4096  # entries of one activation table (ACT_MIN ... ACT_MAX)
GATE_FRAC = 11


@nb.njit(inline="always")
def _rq(acc, shift):
    return acc >> shift if shift >= 0 else acc << -shift


@nb.njit(inline="always")
def _clamp(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@nb.njit(inline="always", boundscheck=False)
def _dot(w, o, wo, x, xo, n):
    """sum_k w[o, wo + k] x[xo + k], k < n. The sum is kept in int32 (the truncation at each term
    lets the compiler use the int16 pair products of AVX-512): exact, since every layer's
    accumulator bound is below 2^31 (checked when the network is compiled)."""
    wr, xr = w[o, wo : wo + n], x[xo : xo + n]  # views from offset 0: the form the compiler vectorizes
    acc = np.int32(0)
    for k in range(n):
        acc = np.int32(acc + np.int32(wr[k]) * np.int32(xr[k]))
    return np.int64(acc)


@nb.njit(boundscheck=False, cache=True)
def _layer(w, b, s, x, out):
    """out[o] = floor((w[o] . x + b[o]) 2^-s[o]): w (O, K), x (K,)."""
    for o in range(w.shape[0]):
        out[o] = _rq(_dot(w, o, 0, x, 0, w.shape[1]) + b[o], s[o])


@nb.njit(boundscheck=False, cache=True)
def _gate(lut, pre, out):
    """tanh(a) sigmoid(b) by table: a, b the two halves of pre (2C,), lut (2, LUT)."""
    c = out.shape[0]
    for k in range(c):
        t = np.int64(lut[0, pre[k] - ACT_MIN])
        g = np.int64(lut[1, pre[c + k] - ACT_MIN])
        out[k] = _clamp((t * g + (1 << (GATE_FRAC - 1))) >> GATE_FRAC, ACT_MIN, ACT_MAX)


@nb.njit(boundscheck=False, cache=True)
def _cond(net, feat, t, i, j, l, out):
    """Conditioning biases (4C,) of layer l at (i, j) of tile t (unclamped); untouched (zeros)
    without features."""
    if feat.shape[3] != 0:
        _layer(net.cond_w[l], net.cond_b[l], net.cond_s[l], feat[t, i, j], out)


@nb.njit(boundscheck=False, cache=True)
def row_pass(net, xc, vc, link, hrow, feat, t, i):
    """Vertical stack of row i of tile t (reads image rows < i only) and its links; rolls the caches."""
    c = net.channels
    c2 = 2 * c
    layers = net.v_w.shape[0]
    width = link.shape[2]
    cin = net.in_channels
    xa, xr = xc[t, 0], xc[t, 1]
    if i > 0:  # roll the rows: each column's rows i-3 .. i-1 <- i-2 .. i, and v rows i-1 <- i
        for p in range(width + 6):
            for r in range(2):
                for k in range(cin):
                    xa[(3 * p + r) * cin + k] = xa[(3 * p + r + 1) * cin + k]
            for k in range(cin):
                xa[(3 * p + 2) * cin + k] = xr[p * cin + k]
        for l in range(layers):
            v = vc[l, t]
            for p in range(width + 2):
                for k in range(c):
                    v[2 * p * c + k] = v[(2 * p + 1) * c + k]
    xr[:] = 0
    vp = np.empty(c2, np.int16)  # activations that feed a product are int16: int16 pair products
    lk = np.empty(c2, np.int64)
    cb = np.zeros(2 * c2, np.int64)
    g = np.empty(c, np.int16)
    n_in = 21 * cin
    vin_w, vin_b, vin_s = net.vin_w, net.vin_b, net.vin_s
    for j in range(width):  # the input layer: rows i-3 .. i-1, columns j-3 .. j+3
        _cond(net, feat, t, i, j, 0, cb)
        for o in range(c2):
            acc = _dot(vin_w, o, 0, xa, 3 * j * cin, n_in) + vin_b[o]
            vp[o] = _clamp(_rq(acc, vin_s[o]) + cb[o], ACT_MIN, ACT_MAX)
        _layer(net.lin_w, net.lin_b, net.lin_s, vp, lk)
        for o in range(c2):
            link[0, t, j, o] = lk[o] + cb[c2 + o]
        if layers:
            _gate(net.gate_v[0], vp, g)
            for k in range(c):
                vc[0, t, (2 * j + 3) * c + k] = g[k]
    n_v = 6 * c
    for l in range(layers):
        w, b, s, v = net.v_w[l], net.v_b[l], net.v_s[l], vc[l, t]
        lw, lb, ls = net.link_w[l], net.link_b[l], net.link_s[l]
        for j in range(width):  # rows i-1 .. i of v_l, columns j-1 .. j+1
            _cond(net, feat, t, i, j, l + 1, cb)
            for o in range(c2):
                acc = _dot(w, o, 0, v, 2 * j * c, n_v) + b[o]
                vp[o] = _clamp(_rq(acc, s[o]) + cb[o], ACT_MIN, ACT_MAX)
            _layer(lw, lb, ls, vp, lk)
            for o in range(c2):
                link[l + 1, t, j, o] = lk[o] + cb[c2 + o]
            if l + 1 < layers:
                _gate(net.gate_v[l + 1], vp, g)
                for k in range(c):
                    vc[l + 1, t, (2 * j + 3) * c + k] = g[k]
    hrow[:, t] = 0


@nb.njit(boundscheck=False, cache=True)
def step_block(net, xc, link, hrow, t0, t1, j, params):
    """Horizontal stack and head at column j of the current row of tiles t0 .. t1-1 -> params
    (T, P). Layer by layer: each layer's weights are read once for all the tiles (they stay in
    the L1 cache)."""
    c = net.channels
    c2 = 2 * c
    layers = net.h_w.shape[0]
    cin = net.in_channels
    n = t1 - t0
    hp = np.empty(c2, np.int64)
    g = np.empty(c, np.int16)
    r = np.empty(c, np.int64)
    h = np.empty((n, c), np.int16)
    hin_w = net.hin_w
    for u in range(n):  # the input layer: row i, columns j-3 .. j-1
        t = t0 + u
        xrow = xc[t, 1]
        for o in range(c2):
            acc = _dot(hin_w, o, 0, xrow, j * cin, 3 * cin) + net.hin_b[o]
            hp[o] = _clamp(_rq(acc, net.hin_s[o]) + link[0, t, j, o], ACT_MIN, ACT_MAX)
        _gate(net.gate_h[0], hp, g)
        for k in range(c):
            h[u, k] = _rq(g[k] + net.h0_offset, net.h0_shift)
            hrow[0, t, (j + 1) * c + k] = h[u, k]
    for l in range(layers):
        w, b, s = net.h_w[l], net.h_b[l], net.h_s[l]
        rw, rb, rs, lut = net.res_w[l], net.res_b[l], net.res_s[l], net.gate_h[l + 1]
        for u in range(n):
            t = t0 + u
            hl = hrow[l, t]
            for o in range(c2):  # columns j-1 .. j of h_l
                acc = _dot(w, o, 0, hl, j * c, c2) + b[o]
                hp[o] = _clamp(_rq(acc, s[o]) + link[l + 1, t, j, o], ACT_MIN, ACT_MAX)
            _gate(lut, hp, g)
            _layer(rw, rb, rs, g, r)
            for k in range(c):
                h[u, k] = _clamp(r[k] + h[u, k], ACT_MIN, ACT_MAX)
                hrow[l + 1, t, (j + 1) * c + k] = h[u, k]
    o1 = np.empty(net.out1_w.shape[0], np.int64)
    e = np.empty(net.out1_w.shape[0], np.int16)
    for u in range(n):
        _layer(net.out1_w, net.out1_b, net.out1_s, h[u], o1)
        for k in range(o1.shape[0]):
            e[k] = net.elu[_clamp(o1[k], net.out1_lo[k], net.out1_hi[k]) - ACT_MIN]
        p = params[t0 + u]
        _layer(net.out2_w, net.out2_b, net.out2_s, e, p)
        for k in range(p.shape[0]):
            p[k] = _clamp(p[k], net.out2_lo[k], net.out2_hi[k])




@nb.njit(parallel=True, boundscheck=False, cache=True)
def decode_row(net, xc, vc, link, hrow, feat, i):
    for t in nb.prange(xc.shape[0]):
        row_pass(net, xc, vc, link, hrow, feat, t, i)


@nb.njit(parallel=True, boundscheck=False, cache=True)
def decode_step(net, xc, link, hrow, j, params, blocks):
    """`blocks` blocks of tiles in parallel (one per thread: `step_block`)."""
    n = xc.shape[0]
    for q in nb.prange(blocks):
        step_block(net, xc, link, hrow, q * n // blocks, (q + 1) * n // blocks, j, params)


@nb.njit(boundscheck=False, cache=True)
def set_inputs(xc, j, inputs):
    """inputs (T, Cin): the network inputs of column j of the current row of every tile."""
    cin = inputs.shape[1]
    for t in range(xc.shape[0]):
        for k in range(cin):
            xc[t, 1, (j + 3) * cin + k] = inputs[t, k]


@nb.njit(parallel=True, boundscheck=False, cache=True)
def encode_tiles(net, x, feat, out):
    """Whole tiles: x (T, H, W, Cin) int16 inputs -> out (T, H, W, P) params, each tile by the
    decoder's own row passes and steps (one tile per task: its caches are private)."""
    n, height, width, cin = x.shape
    layers = net.v_w.shape[0]
    c = net.channels
    for t in nb.prange(n):
        xc = np.zeros((1, 2, 3 * (width + 6) * cin), np.int16)
        vc = np.zeros((layers, 1, 2 * (width + 2) * c), np.int16)
        link = np.zeros((layers + 1, 1, width, 2 * c), np.int64)
        hrow = np.zeros((layers + 1, 1, (width + 1) * c), np.int16)
        params = np.empty((1, out.shape[3]), np.int64)
        f = feat[t : t + 1]
        for i in range(height):
            row_pass(net, xc, vc, link, hrow, f, 0, i)
            for j in range(width):
                for k in range(cin):
                    xc[0, 1, (j + 3) * cin + k] = x[t, i, j, k]
            for j in range(width):
                step_block(net, xc, link, hrow, 0, 1, j, params)
                for k in range(params.shape[1]):
                    out[t, i, j, k] = params[0, k]
