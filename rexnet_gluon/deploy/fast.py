"""Fast exact ReXNet inference on CPU (MXNet 1.9.1 + oneDNN 2.4).

``prepare(net)`` turns a trained :class:`~rexnet_gluon.model.ReXNet` into a :class:`FastReXNet`: a new,
inference-only HybridBlock with the same outputs (fp32, max |diff| ~1e-5 at logit scale ~15) that MXNet runs
several times faster. ``quantize(fast_net, calib_data)`` makes an INT8 version.

What it does, and why (each measured, see ``scripts/benchmark.py``):

* **BatchNorm folded** into the weights and bias of the conv before it (exact up to rounding).
* **Channels zero-padded to multiples of 16**, so oneDNN uses its blocked/NHWC kernels (brgconv,
  brdgmm depthwise) instead of plain-layout gemm. Padded channels carry exact zeros through every layer:
  their weights, biases and folded BN shifts are 0, Swish(0) = ReLU6(0) = 0, and the SE gate of a zero channel
  (sigmoid(0) = 0.5) multiplies 0. The SE hidden layer is padded the same way.
* **Partial shortcut as a plain add**: ``out[:, :C_in] += x`` is ``out + x`` when both tensors have the same
  padded width, because the padded channels of ``x`` are zeros. The blocks of a stage share one padded width
  (16, 48, 64, 128, 192 at 1.0x), and oneDNN fuses the add into the projection conv (conv + sum).
* **Swish** ``y * sigmoid(y)``: the conv output is turned into the plain layout once (``transpose`` with the
  identity permutation is a single oneDNN reorder; ``reshape`` costs a reorder plus a copy), then
  ``Activation('sigmoid')`` (oneDNN) and one multiply run on it. MXNet's own ``sigmoid`` op and ``clip`` are
  scalar code (~1-2 GB/s) and are avoided. Where the feature map is large (stride <= 2) the conv gets one extra
  zero output channel: oneDNN then runs it as a plain-layout gemm, Swish needs no reorder at all, and the
  extra channel is sliced off.
* **SE gate without leaving oneDNN** (one image per graph call): ``relu6(y * g)`` is an inference BatchNorm whose
  gamma is the gate ``g`` (mean 0, var 1, eps 1e-30, so its scale is exactly ``g``), followed by an identity
  depthwise 1x1 conv with a fused ``clip(0, 6)``. Both keep oneDNN's layout; ``broadcast_mul`` + ``clip`` would
  reorder twice. (A depthwise conv whose *weights* are the gate is wrong once fused: MXNet 1.9.1's fused conv
  caches its weights after the first call.) Hence the graph processes ``micro_batch`` (default 1) images per
  call and ``FastReXNet`` loops over a larger batch; at batch 32 that is also faster than one batch-32 graph
  (the activations of one image stay in cache).
* MXNet's conv + BN fusion is switched off while the graph is partitioned (``MXNET_DISABLE_MKLDNN_FUSE_CONV_BN``;
  every BN is folded already, and the SE-gate BN must not be folded: its gamma changes with every input).

Environment (must be set before ``import mxnet``; :data:`RECOMMENDED_ENV`): ``MXNET_ENGINE_TYPE=NaiveEngine``
(the threaded engine's per-op hand-off halves the speed: 63 vs 143 img/s at batch 1 in scripts/benchmark.py),
``MXNET_USE_OPERATOR_TUNING=0`` (MXNet's auto-tuning runs the remaining elementwise ops on one thread) and
``OMP_NUM_THREADS`` = the CPUs this process may use (without it MXNet 1.9.1 ran this graph on one thread of this
2-vCPU machine: 75-78 vs 119-125 img/s at batch 1, measured side by side).
"""
import os
from contextlib import contextmanager

import numpy as np

import mxnet as mx
from mxnet.gluon.block import Block, HybridBlock

from ..spec import ReXNetSpec

__all__ = ['prepare', 'FastReXNet', 'MicroBatched', 'StalePrimitiveError', 'quantize', 'folded_layers',
           'RECOMMENDED_ENV', 'env_report', 'max_abs_diff']


def _usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not Linux
        return os.cpu_count() or 1


RECOMMENDED_ENV = {'MXNET_ENGINE_TYPE': 'NaiveEngine', 'MXNET_USE_OPERATOR_TUNING': '0',
                   'OMP_NUM_THREADS': str(_usable_cpus())}


def env_report():
    """{name: (current value, recommended value)} for the environment variables the fast path wants."""
    return {k: (os.environ.get(k), v) for k, v in RECOMMENDED_ENV.items()}


@contextmanager
def _no_conv_bn_fusion():
    key = 'MXNET_DISABLE_MKLDNN_FUSE_CONV_BN'
    old = os.environ.get(key)
    if old == '1':
        yield
        return
    os.environ[key] = '1'
    try:
        yield
    finally:
        if old is None:
            del os.environ[key]
        else:
            os.environ[key] = old


def _round_up(c, align):
    return -(-int(c) // align) * align if align and align > 1 else int(c)


def _np(param):
    return param.data(param.list_ctx()[0]).asnumpy().astype(np.float64)


def _bn_affine(bn):
    """(scale, shift) of an inference-mode BatchNorm (nn.BatchNorm, SyncBatchNorm): y = scale * x + shift."""
    by_role = {}
    for name, p in bn.params.items():
        for role in ('running_mean', 'running_var', 'gamma', 'beta'):
            if name.endswith(role):
                by_role[role] = p
    if 'running_mean' not in by_role or 'running_var' not in by_role:
        raise ValueError('fast.prepare folds the normalisation layers into the convs; %s has no running statistics '
                         '(GroupNorm, InstanceNorm, ... cannot be folded)' % type(bn).__name__)
    kw = getattr(bn, '_kwargs', {})
    eps = float(kw.get('eps', 1e-5))
    mean, var = _np(by_role['running_mean']), _np(by_role['running_var'])
    gamma = np.ones_like(mean) if kw.get('fix_gamma', False) or 'gamma' not in by_role else _np(by_role['gamma'])
    beta = _np(by_role['beta']) if 'beta' in by_role else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def _fold(conv, bn=None):
    w = _np(conv.weight)
    b = _np(conv.bias) if getattr(conv, 'bias', None) is not None else np.zeros(w.shape[0])
    if bn is not None:
        scale, shift = _bn_affine(bn)
        w = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
        b = b * scale + shift
    return w, b


def _pad(w, b, out_p, in_p=None, depthwise=False):
    o, i = w.shape[:2]
    wp = np.zeros((out_p, 1 if depthwise else in_p) + w.shape[2:])
    if depthwise:
        wp[:o] = w
    else:
        wp[:o, :i] = w
    bp = np.zeros(out_p)
    bp[:o] = b
    return wp, bp


def _widths(spec, align):
    """Padded width of the stem output (key -1) and of every block output; a shortcut block needs its input and
    output equally wide, so the blocks of a stage share the widest padded width."""
    t = {-1: _round_up(spec.stem, align)}
    for i, b in enumerate(spec.blocks):
        t[i] = _round_up(b.out_channels, align)
    changed = True
    while changed:
        changed = False
        for i, b in enumerate(spec.blocks):
            if b.shortcut and t[i - 1] != t[i]:
                t[i - 1] = t[i] = max(t[i - 1], t[i])
                changed = True
    return t


def folded_layers(net, align=16):
    """The network as a list of layer dicts (numpy arrays, float64), BN folded and channels padded.

    kinds: 'conv' (weight, bias, kernel, stride, pad, groups, act, div = total stride of its output),
    'block_start', 'se' (w1, b1, w2, b2: the two 1x1 convs, SE BN folded into the first), 'block_end'
    (shortcut), 'pool', 'fc' (weight, bias, act).
    """
    from ..model import LinearBottleneck, SE
    spec = getattr(net, 'spec', None)
    if not isinstance(spec, ReXNetSpec):
        raise TypeError('fast.prepare needs a rexnet_gluon ReXNet (ReXNetV1 / ReXNetV1Lite), got %s'
                        % type(net).__name__)
    feats = list(net.features)
    t = _widths(spec, align)
    layers = []
    div = [1]

    def conv(c, bn, out_p, in_p, act, depthwise=False):
        w, b = _fold(c, bn)
        w, b = _pad(w, b, out_p, in_p, depthwise)
        div[0] *= c._kwargs['stride'][0]
        layers.append(dict(kind='conv', weight=w, bias=b, kernel=tuple(c._kwargs['kernel']),
                           stride=tuple(c._kwargs['stride']), pad=tuple(c._kwargs['pad']),
                           groups=out_p if depthwise else 1, act=act, div=div[0]))

    conv(feats[0], feats[1], t[-1], 3, spec.act)
    for i, (blk, b) in enumerate(zip(feats[3:3 + len(spec.blocks)], spec.blocks)):
        if not isinstance(blk, LinearBottleneck):
            raise TypeError('features[%d] is %s, not a LinearBottleneck' % (3 + i, type(blk).__name__))
        mods = list(blk.out)
        layers.append(dict(kind='block_start'))
        in_w = t[i - 1]
        j = 0
        if b.expand:
            dw_p = _round_up(b.dw_channels, align)
            conv(mods[0], mods[1], dw_p, in_w, spec.act)
            j = 3
        else:
            dw_p = in_w
        se = mods[j + 2] if b.se_channels else None
        conv(mods[j], mods[j + 1], dw_p, None, None if se is not None else 'relu6', depthwise=True)
        if se is not None:
            if not isinstance(se, SE):
                raise TypeError('expected an SE block in block %d, got %s' % (i, type(se).__name__))
            fc = list(se.fc)
            se_p = _round_up(b.se_channels, align)
            w1, b1 = _pad(*_fold(fc[0], fc[1]), se_p, dw_p)
            w2, b2 = _pad(*_fold(fc[3]), dw_p, se_p)
            layers.append(dict(kind='se', w1=w1, b1=b1, w2=w2, b2=b2))
        conv(mods[-2], mods[-1], t[i], dw_p, None)
        layers.append(dict(kind='block_end', shortcut=b.shortcut))
    pen_p = _round_up(spec.pen, align)
    conv(feats[-4], feats[-3], pen_p, t[len(spec.blocks) - 1], spec.act)
    layers.append(dict(kind='pool'))
    out = list(net.output)
    k = 0
    if spec.lite:
        w, b = _fold(out[0], out[1])
        w, b = _pad(w, b, w.shape[0], pen_p)
        layers.append(dict(kind='fc', weight=w.reshape(w.shape[0], -1), bias=b, act='relu6'))
        pen_p = w.shape[0]
        k = 3
    rest = [m for m in out[k:] if type(m).__name__ not in ('Dropout', 'Flatten')]
    if len(rest) != 1 or not hasattr(rest[0], 'weight') or getattr(rest[0], 'act', None) is not None:
        raise ValueError('fast.prepare knows the ReXNet head (Dropout, 1x1 conv or Dense, Flatten); net.output holds '
                         '%s' % [type(m).__name__ for m in out])
    w, b = _fold(rest[0])
    w = w.reshape(w.shape[0], -1)
    wp = np.zeros((w.shape[0], pen_p))
    wp[:, :w.shape[1]] = w
    layers.append(dict(kind='fc', weight=wp, bias=b, act=None))
    return layers


_ARRAYS = ('weight', 'bias', 'w1', 'b1', 'w2', 'b2', 'zeros', 'ones', 'ident')


class FastReXNet(HybridBlock):
    """Inference-only ReXNet (BN folded, 16-aligned channels, oneDNN-friendly ops); see the module doc.

    The graph runs ``micro_batch`` images per call (the SE gate as a BatchNorm needs 1); ``forward`` splits a
    larger batch whose size is a multiple of it. With ``input_size`` (H, W), set by :func:`prepare`, the graph itself
    (also when exported) refuses any other input shape. Build it with :func:`prepare`.
    """

    def __init__(self, layers, micro_batch=1, gemm_div=2, dtype='float32', input_size=None, **kwargs):
        super(FastReXNet, self).__init__(**kwargs)
        self.micro_batch = int(micro_batch) if micro_batch else 0
        self.input_size = tuple(input_size) if input_size else None   # (H, W): the graph refuses other shapes
        self._plan = []
        values = {}
        block, n_fc = -1, 0
        with self.name_scope():
            for n, layer in enumerate(layers):
                layer = dict(layer)
                # readable op names (for profiles and quantization exclusions): stem, b3_exp, b3_dw, b3_se, ...
                if layer['kind'] == 'block_start':
                    block += 1
                elif layer['kind'] == 'pool' and block >= 0:
                    block = None
                if layer['kind'] == 'conv':
                    if block is None or block < 0:
                        layer['name'] = 'stem' if block is not None else 'head'
                    else:
                        layer['name'] = 'b%d_%s' % (block, 'dw' if layer['groups'] > 1 else
                                                    ('pwl' if layer['act'] is None else 'exp'))
                elif layer['kind'] == 'se':
                    layer['name'] = 'b%d_se' % block
                elif layer['kind'] == 'fc':
                    layer['name'] = 'fc%d' % n_fc
                    n_fc += 1
                if layer['kind'] == 'se' and self.micro_batch == 1:
                    c = layer['w2'].shape[0]
                    layer.update(zeros=np.zeros(c), ones=np.ones(c), ident=np.ones((c, 1, 1, 1)))
                step = {k: v for k, v in layer.items() if k not in _ARRAYS}
                if layer['kind'] == 'conv':
                    if layer['act'] == 'swish' and layer['groups'] == 1 and layer['div'] <= gemm_div:
                        # one extra zero output channel: oneDNN runs this conv as a plain-layout gemm, so the
                        # Swish ops need no reorder; the channel is sliced off before the depthwise conv
                        step['slice'] = layer['weight'].shape[0]
                        layer['weight'] = np.concatenate([layer['weight'], np.zeros_like(layer['weight'][:1])])
                        layer['bias'] = np.concatenate([layer['bias'], [0.0]])
                    step['num_filter'] = layer['weight'].shape[0]
                elif layer['kind'] == 'se':
                    step['hidden'], step['channels'] = layer['w1'].shape[0], layer['w2'].shape[0]
                elif layer['kind'] == 'fc':
                    step['num_hidden'] = layer['weight'].shape[0]
                for key in _ARRAYS:
                    if key in layer:
                        name = 'l%d_%s' % (n, key)
                        setattr(self, name, self.params.get(name, shape=layer[key].shape, dtype=dtype,
                                                            init=mx.init.Zero(), grad_req='null',
                                                            differentiable=False))
                        values[name] = layer[key]
                        step[key] = name
                self._plan.append(step)
        self.initialize(ctx=mx.cpu())
        for full, p in self.params.items():
            p.set_data(mx.nd.array(values[full[len(self.prefix):]], dtype=dtype))

    def forward(self, x, *args):
        m = self.micro_batch
        if isinstance(x, mx.nd.NDArray) and self.input_size and tuple(x.shape[2:]) != self.input_size:
            raise ValueError('this fast graph was prepared for %dx%d inputs, got shape %s; prepare one for that '
                             'size: fast.prepare(net, example=(1, 3, H, W))' % (self.input_size + (x.shape,)))
        with _no_conv_bn_fusion():
            if isinstance(x, mx.nd.NDArray) and m and x.shape[0] != m:
                return _split_call(super(FastReXNet, self).forward, x, m)
            with _guarded():
                return super(FastReXNet, self).forward(x, *args)

    @staticmethod
    def _swish(F, y):
        y = F.transpose(y, axes=(0, 1, 2, 3))   # one reorder to the plain layout, shared by both ops
        return y * F.Activation(y, act_type='sigmoid')

    @staticmethod
    def _relu6(F, y):
        return F.minimum(F.Activation(y, act_type='relu'), 6.0)   # MXNet's clip op is ~10x slower

    def hybrid_forward(self, F, x, **p):
        y = x
        if self.micro_batch and self.input_size:
            # A graph built for micro_batch images must refuse other shapes: fed a batch of 2, the exported graph
            # corrupted the heap in MXNet 1.9.1 (and its reshape silently truncates). reshape_like fails shape
            # inference, cleanly, before anything runs; it costs one small memset.
            y = F.reshape_like(x, F.zeros(shape=(self.micro_batch, 3) + self.input_size))
        block_in = None
        for s in self._plan:
            kind = s['kind']
            if kind == 'conv':
                y = F.Convolution(y, p[s['weight']], p[s['bias']], kernel=s['kernel'], stride=s['stride'],
                                  pad=s['pad'], num_filter=s['num_filter'], num_group=s['groups'], name=s['name'])
                if s['act'] == 'relu6':
                    y = F.clip(y, 0, 6)   # fused into the conv by oneDNN (bounded relu)
                elif s['act'] == 'swish' and 'slice' in s:
                    y = F.slice_axis(y * F.Activation(y, act_type='sigmoid'), axis=1, begin=0, end=s['slice'])
                elif s['act'] == 'swish':
                    y = self._swish(F, y)
            elif kind == 'block_start':
                block_in = y
            elif kind == 'se':
                g = F.Pooling(y, kernel=(1, 1), global_pool=True, pool_type='avg')
                g = F.Activation(F.Convolution(g, p[s['w1']], p[s['b1']], kernel=(1, 1), num_filter=s['hidden'],
                                               name=s['name'] + '1'), act_type='relu')
                g = F.Activation(F.Convolution(g, p[s['w2']], p[s['b2']], kernel=(1, 1), num_filter=s['channels'],
                                               name=s['name'] + '2'), act_type='sigmoid')
                if 'ident' in s:
                    # relu6(y * g): BatchNorm with gamma = g is exactly y * g; identity depthwise conv + fused clip
                    c = s['channels']
                    y = F.BatchNorm(y, F.reshape(g, shape=(-1,)), p[s['zeros']], p[s['zeros']], p[s['ones']],
                                    eps=1e-30, fix_gamma=False, use_global_stats=True, name=s['name'] + '_gate')
                    y = F.clip(F.Convolution(y, p[s['ident']], kernel=(1, 1), num_filter=c, num_group=c,
                                             no_bias=True, name=s['name'] + '_relu6'), 0, 6)
                else:
                    y = self._relu6(F, F.broadcast_mul(y, g))
            elif kind == 'block_end':
                if s['shortcut']:
                    y = y + block_in   # fused into the projection conv (conv + sum)
            elif kind == 'pool':
                y = F.Pooling(y, kernel=(1, 1), global_pool=True, pool_type='avg')
            elif kind == 'fc':
                y = F.FullyConnected(y, p[s['weight']], p[s['bias']], num_hidden=s['num_hidden'], flatten=True,
                                     name=s['name'])
                if s['act'] == 'relu6':
                    y = self._relu6(F, y)
        return y


class StalePrimitiveError(RuntimeError):
    """MXNet 1.9.1's oneDNN primitive cache gave this graph a primitive of another graph (see :func:`_guarded`)."""


STALE_PRIMITIVE_HELP = (
    'MXNet 1.9.1 failed inside this fast graph ("%s"): its process-wide oneDNN primitive cache handed the graph a '
    'primitive made for another graph. Seen here after fast graphs of several widths were prepared in one process '
    'at a small input size (rexnet_1.5x, 2.0x, 3.0x, then rexnet_lite_1.5x at 32 px, batch 3); the second image of '
    'a batch then fails. Set MXNET_MKLDNN_CACHE_NUM=0 before mxnet is imported (oneDNN then makes its primitives '
    'anew), or prepare fewer graphs per process.')


@contextmanager
def _guarded():
    """The stale-primitive failure as a clear error instead of MXNet's internal check message."""
    try:
        yield
    except mx.base.MXNetError as err:
        if "can't generate TBlob for MKLDNN data" not in str(err):
            raise
        raise StalePrimitiveError(STALE_PRIMITIVE_HELP % str(err).strip().splitlines()[-1][:160]) from None


def _split_call(fn, x, m):
    n = x.shape[0]
    # A static_alloc graph writes every call's result into the same buffer: copy each chunk's result out.
    with _guarded():
        outs = [fn(x[i:i + m]).copy() for i in range(0, n, m)]
    return outs[0] if len(outs) == 1 else mx.nd.concat(*outs, dim=0)


class MicroBatched(Block):
    """Runs ``block`` on chunks of ``micro_batch`` images (for graphs built for one image, e.g. quantized ones)."""

    def __init__(self, block, micro_batch=1, **kwargs):
        super(MicroBatched, self).__init__(**kwargs)
        self.block = block
        self.micro_batch = micro_batch

    def forward(self, x):
        with _no_conv_bn_fusion():
            if x.shape[0] == self.micro_batch:
                return self.block(x)
            return _split_call(self.block, x, self.micro_batch)


def _as_nd(example):
    if example is None:
        example = (1, 3, 224, 224)
    return example if isinstance(example, mx.nd.NDArray) else mx.nd.zeros(tuple(example))


def prepare(net, example=None, micro_batch=1, fuse=True, align=16, gemm_div=2, static=True, dtype='float32'):
    """A :class:`FastReXNet` equal to ``net`` (a trained ReXNet, any width, V1 / lite / rexnetr) in inference.

    ``example``: an input NDArray or shape (default (1, 3, 224, 224)); only its spatial size matters (the graph
    is built for ``micro_batch`` images). ``fuse`` partitions the graph for oneDNN (``optimize_for('MKLDNN')``);
    ``fuse=False`` returns the hybridized, unpartitioned graph (the input of :func:`quantize`).
    ``micro_batch=0`` builds one graph for the whole batch (SE gate as ``broadcast_mul``; slower).
    ``dtype='float64'`` (never fused: oneDNN is fp32) shows the transformation is exact (~1e-13).
    """
    x = _as_nd(example)
    if micro_batch:
        x = mx.nd.zeros((micro_batch,) + tuple(x.shape[1:]))
    x = x.astype(dtype)
    fast = FastReXNet(folded_layers(net, align), micro_batch=micro_batch, gemm_div=gemm_div, dtype=dtype,
                      input_size=x.shape[2:])
    fast.hybridize(static_alloc=static, static_shape=static)
    with _no_conv_bn_fusion():
        fast(x)
        if fuse and dtype == 'float32':
            fast.optimize_for(x, backend='MKLDNN', static_alloc=static, static_shape=static)
    return fast


def quantize(net, calib_data, example=None, calib_mode='naive', quantized_dtype='int8',
             exclude_operators=('elemwise_mul',), exclude_layers_match=(), granularity='tensor-wise',
             num_calib_examples=None, logger=None):
    """INT8 ReXNet (oneDNN): ``net`` is a ReXNet or an unfused :class:`FastReXNet` (``prepare(..., fuse=False)``).

    ``calib_data``: an NDArray of images (N, 3, H, W) for the calibration. The fast graph's SE gate (a
    BatchNorm whose gamma changes per input) and, by default, the Swish products stay in fp32.
    Returns a :class:`MicroBatched` block.
    """
    from mxnet.contrib.quantization import quantize_net_v2
    if not isinstance(net, FastReXNet):
        net = prepare(net, example if example is not None else (1,) + tuple(calib_data.shape[1:]), fuse=False)
    m = net.micro_batch or calib_data.shape[0]
    excluded = sorted(set(exclude_operators or ()) | {'BatchNorm'})
    it = mx.io.NDArrayIter(calib_data, batch_size=m, data_name='data')
    with _no_conv_bn_fusion():
        q = quantize_net_v2(net, quantized_dtype=quantized_dtype, exclude_operators=excluded, calib_data=it,
                            exclude_layers_match=list(exclude_layers_match), quantize_granularity=granularity,
                            calib_mode=calib_mode, num_calib_examples=num_calib_examples or calib_data.shape[0],
                            ctx=mx.cpu(), logger=logger)
        q.hybridize(static_alloc=True, static_shape=True)
        q(calib_data[:m])
    return MicroBatched(q, m)


def max_abs_diff(a, b):
    return float(np.abs(a.asnumpy().astype(np.float64) - b.asnumpy().astype(np.float64)).max())
