"""ReXNet and ReXNet-lite as Gluon HybridBlocks.

The block tree mirrors the official PyTorch module tree (``features.N.out.K``, SE ``fc.K``,
``output.K``), parameter-free layers included, so Gluon's structural parameter names equal the
official state_dict keys up to BatchNorm's ``gamma``/``beta``. The shapes come from
:mod:`rexnet_gluon.spec`.
"""
import inspect
import warnings

from mxnet.gluon import nn
from mxnet.gluon.block import Block, HybridBlock

from .norm import UnbiasedRunningVar
from .spec import ReXNetSpec, lite_spec, v1_spec

__all__ = ['ReXNet', 'ReXNetV1', 'ReXNetV1Lite', 'ReXNetFeatures', 'Swish', 'ReLU6']


class Swish(HybridBlock):
    """SiLU, x * sigmoid(x) (nn.Swish would add a ``beta * x`` op for beta == 1).

    ``onednn`` (``swish_op='activation'``, the networks' default) computes the sigmoid with ``Activation('sigmoid')``,
    which oneDNN runs vectorised, instead of MXNet's scalar ``sigmoid`` op (``swish_op='sigmoid'``): the plain
    hybridized net ~1.4x / 1.5x faster at batch 1 / 32, a training step 8 %, outputs ~1e-7 apart. It trains the same
    step by step (``scripts/train_parity.py``; ``--swish-op sigmoid`` for the other form); Horovod's two ranks end
    7e-16 from one process with two devices in float64 (tests/train/test_train.py; README, "Training parity").
    """
    def __init__(self, onednn=False, **kwargs):
        super(Swish, self).__init__(**kwargs)
        self.onednn = onednn

    def hybrid_forward(self, F, x):
        if self.onednn:
            return x * F.Activation(x, act_type='sigmoid')
        return x * F.sigmoid(x)


class ReLU6(HybridBlock):
    """min(max(x, 0), 6). After a conv + norm, ``clip`` is what oneDNN fuses into the conv (bounded ReLU);
    elsewhere (``after_conv=False``: after the SE product) oneDNN's ReLU + ``minimum`` is faster than MXNet's
    scalar ``clip`` kernel, with the same values bit for bit."""
    def __init__(self, after_conv=True, **kwargs):
        super(ReLU6, self).__init__(**kwargs)
        self.after_conv = after_conv

    def hybrid_forward(self, F, x):
        if self.after_conv:
            return F.clip(x, 0, 6)
        return F.minimum(F.Activation(x, act_type='relu'), 6.0)


def _activation(kind):
    if kind.startswith('swish'):
        return Swish(onednn=kind == 'swish_onednn')
    return ReLU6()


class _NormFactory:
    """Builds the normalisation layers: BatchNorm with PyTorch's eps/momentum by default, or any
    GluonCV-style ``norm_layer`` (SyncBatchNorm, GroupNorm, ...) with ``norm_kwargs``."""

    def __init__(self, norm_layer=None, norm_kwargs=None):
        self.layer = norm_layer or nn.BatchNorm
        self.kwargs = dict(norm_kwargs or {})
        try:
            params = inspect.signature(self.layer).parameters
        except (TypeError, ValueError):
            params = {}
        self._accepts = set(params)
        self._open = any(p.kind == p.VAR_KEYWORD for p in params.values())
        groups_arg = next((g for g in ('ngroups', 'num_groups') if g in params), None)
        self.groups = None
        if groups_arg:
            default = params[groups_arg].default
            self.groups = self.kwargs.get(groups_arg, None if default is inspect.Parameter.empty else default)
            self.groups_arg = groups_arg

    def _takes(self, name):
        return name in self._accepts

    def check_channels(self, channels):
        if not self.groups:
            return
        bad = sorted({c for c in channels if c % self.groups})
        if bad:
            divisors = [g for g in (32, 16, 8, 4, 2, 1) if all(c % g == 0 for c in channels)]
            raise ValueError(
                '%s with %s=%d cannot normalise ReXNet: these channel counts are not divisible by %d: %s. '
                'ReXNet widths are not multiples of 32; pass norm_kwargs={%r: %d} (the largest group count '
                'that divides every layer of this width) or use BatchNorm.'
                % (getattr(self.layer, '__name__', self.layer), self.groups_arg, self.groups, self.groups,
                   bad[:12], self.groups_arg, divisors[0]))

    def __call__(self, channels, zero_gamma=False):
        kwargs = {}
        # PyTorch BN: eps 1e-5, momentum 0.1 == Gluon momentum 0.9.
        for name, value in (('momentum', 0.9), ('epsilon', 1e-5), ('in_channels', channels)):
            if self._takes(name):
                kwargs[name] = value
        kwargs.update(self.kwargs)
        if zero_gamma:
            if not self._takes('gamma_initializer'):
                raise ValueError('last_gamma=True needs a norm_layer with a gamma_initializer argument; '
                                 '%s has none' % getattr(self.layer, '__name__', self.layer))
            kwargs['gamma_initializer'] = 'zeros'
        return self.layer(**kwargs)


class SE(HybridBlock):
    """Squeeze-excitation with a norm layer between its two 1x1 convs (as in the original)."""

    def __init__(self, channels, hidden, norm, **kwargs):
        super(SE, self).__init__(**kwargs)
        with self.name_scope():
            # Global pooling maps to ONNX GlobalAveragePool (a mean op breaks mx2onnx at opset >= 18).
            self.pool = nn.GlobalAvgPool2D()
            self.fc = nn.HybridSequential(prefix='fc_')
            with self.fc.name_scope():
                self.fc.add(nn.Conv2D(hidden, 1, use_bias=True, in_channels=channels),
                            norm(hidden),
                            nn.Activation('relu'),
                            nn.Conv2D(channels, 1, use_bias=True, in_channels=hidden),
                            nn.Activation('sigmoid'))

    def hybrid_forward(self, F, x):
        return F.broadcast_mul(x, self.fc(self.pool(x)))


class LinearBottleneck(HybridBlock):
    """[1x1 expand + norm + act] -> kxk depthwise + norm -> [SE] -> ReLU6 -> 1x1 + norm, with the
    partial identity shortcut (input added to the first ``in_channels`` outputs)."""

    def __init__(self, block, act, norm, last_gamma=False, **kwargs):
        super(LinearBottleneck, self).__init__(**kwargs)
        self.in_channels = block.in_channels
        self.out_channels = block.out_channels
        self.use_shortcut = block.shortcut
        dw = block.dw_channels
        with self.name_scope():
            self.out = nn.HybridSequential(prefix='out_')
            with self.out.name_scope():
                if block.expand:
                    self.out.add(nn.Conv2D(dw, 1, use_bias=False, in_channels=block.in_channels),
                                 norm(dw), _activation(act))
                self.out.add(nn.Conv2D(dw, block.kernel, block.stride, block.kernel // 2, groups=dw,
                                       use_bias=False, in_channels=dw),
                             norm(dw))
                if block.se_channels:
                    self.out.add(SE(dw, block.se_channels, norm))
                self.out.add(ReLU6(after_conv=not block.se_channels),
                             nn.Conv2D(block.out_channels, 1, use_bias=False, in_channels=dw),
                             norm(block.out_channels, zero_gamma=last_gamma and self.use_shortcut))

    def hybrid_forward(self, F, x):
        out = self.out(x)
        if not self.use_shortcut:
            return out
        extra = self.out_channels - self.in_channels
        if extra:
            # out[:, :in] += x, written as out + zero-padded x. The obvious slice + add + concat is exact
            # too, but its backward fails in MXNet 1.9.1's oneDNN ("could not construct a sub-memory" at
            # channel offsets that are not multiples of 16), and so does concat(x, zeros) once hybridized.
            # Pad only pads axes >= 2, so view x as (N, 1, C, H*W), pad C, and view it back. Zeros added
            # are exact, forward and backward (the gradient of pad is a slice).
            x = F.expand_dims(F.reshape(x, shape=(0, 0, -1)), axis=1)
            x = F.pad(x, mode='constant', constant_value=0, pad_width=(0, 0, 0, 0, 0, extra, 0, 0))
            x = F.reshape_like(x, out)
        return out + x


class ReXNet(HybridBlock):
    """A ReXNet built from a :class:`~rexnet_gluon.spec.ReXNetSpec` (use ReXNetV1 / ReXNetV1Lite).

    Children follow GluonCV: ``features`` (stem, blocks, final 1x1 conv, global pool) and
    ``output`` (classifier; replace it to fine-tune).
    """

    def __init__(self, spec, classes=1000, dropout=0.2, norm_layer=None, norm_kwargs=None,
                 last_gamma=False, input_size=224, bn_running_var='unbiased', swish_op='activation', **kwargs):
        for gluoncv_only in ('pretrained', 'ctx', 'root'):
            if gluoncv_only in kwargs:
                raise TypeError('%s is an argument of rexnet_gluon.get_model(), not of the network class'
                                % gluoncv_only)
        super(ReXNet, self).__init__(**kwargs)
        if not isinstance(spec, ReXNetSpec):
            raise TypeError('spec must be a ReXNetSpec, got %r' % (spec,))
        if not isinstance(classes, int) or classes < 1:
            raise ValueError('classes must be a positive integer, got %r' % (classes,))
        if not 0 <= dropout < 1:
            raise ValueError('dropout must be in [0, 1), got %r' % (dropout,))
        if swish_op not in ('sigmoid', 'activation'):
            raise ValueError("swish_op must be 'sigmoid' (x * sigmoid(x)) or 'activation' (x * Activation(x, "
                             "'sigmoid'), oneDNN), got %r" % (swish_op,))
        if bn_running_var not in ('unbiased', 'biased'):
            raise ValueError("bn_running_var must be 'unbiased' (PyTorch's update, the default) or 'biased' "
                             "(MXNet's), got %r" % (bn_running_var,))
        self.spec = spec
        self.num_classes = classes
        self.input_size = input_size
        norm = _NormFactory(norm_layer, norm_kwargs)
        act = 'swish_onednn' if spec.act == 'swish' and swish_op == 'activation' else spec.act
        channels = spec.channel_list() + [b.dw_channels for b in spec.blocks] + \
            [b.se_channels for b in spec.blocks if b.se_channels] + ([spec.head_hidden] if spec.lite else [])
        norm.check_channels(channels)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='features_')
            with self.features.name_scope():
                self.features.add(nn.Conv2D(spec.stem, 3, 2, 1, use_bias=False, in_channels=3),
                                  norm(spec.stem), _activation(act))
                for block in spec.blocks:
                    self.features.add(LinearBottleneck(block, act, norm, last_gamma))
                self.features.add(nn.Conv2D(spec.pen, 1, use_bias=False, in_channels=spec.blocks[-1].out_channels),
                                  norm(spec.pen), _activation(act),
                                  nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential(prefix='output_')
            with self.output.name_scope():
                if spec.lite:
                    self.output.add(nn.Conv2D(spec.head_hidden, 1, use_bias=True, in_channels=spec.pen),
                                    norm(spec.head_hidden), ReLU6())
                    head_in = spec.head_hidden
                else:
                    head_in = spec.pen
                self.output.add(nn.Dropout(dropout),
                                nn.Conv2D(classes, 1, use_bias=True, in_channels=head_in),
                                nn.Flatten())
        self.bn_running_var = bn_running_var
        self._bn_stats = None
        if bn_running_var == 'unbiased':
            self._bn_stats = UnbiasedRunningVar(self)
            self.register_forward_pre_hook(self._bn_stats.before_call)

    def hybridize(self, *args, **kwargs):
        """Gluon's ``hybridize``; given neither ``static_alloc`` nor ``static_shape``, both are on: the same
        outputs bit for bit (at any batch size; a new input shape re-plans the graph once) and faster on CPU
        (ReXNet-1.0x at 224 px, ``scripts/measure_plain_inference.py``: 1.04x at batch 1, 1.19x at batch 32)."""
        given = inspect.signature(HybridBlock.hybridize).bind(self, *args, **kwargs).arguments
        if 'static_alloc' not in given and 'static_shape' not in given:   # optimize_for passes them by position
            kwargs.update(static_alloc=True, static_shape=True)
        # MXNet warns that forward pre-hooks do not run inside a hybridized *parent*; the network's own
        # (the running-variance correction) does run when the network itself is called, which is the use here.
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*is being hybridized while still having forward hook')
            super(ReXNet, self).hybridize(*args, **kwargs)

    def save_parameters(self, filename, deduplicate=False):
        if self._bn_stats is not None:
            self._bn_stats.flush()
        super(ReXNet, self).save_parameters(filename, deduplicate)

    def export(self, path, epoch=0, **kwargs):
        if self._bn_stats is not None:
            self._bn_stats.flush()
        return super(ReXNet, self).export(path, epoch, **kwargs)

    def __setattr__(self, name, value):
        # GluonCV's fine-tuning recipe assigns `net.output = nn.Dense(classes)`; Gluon refuses to change a
        # child's type, so drop the old head first. Only the two GluonCV children are replaceable this way.
        if name in ('features', 'output') and isinstance(value, Block) and isinstance(self.__dict__.get(name), Block):
            del self.__dict__[name]
            if self.__dict__.get('_bn_stats') is not None:
                self._bn_stats.flush()
                super(ReXNet, self).__setattr__(name, value)
                self._bn_stats.watch()      # the new child's BatchNorm layers, if any
                return
        super(ReXNet, self).__setattr__(name, value)

    @property
    def feature_info(self):
        """Detection-backbone taps: dicts of stride, channels and ``features`` index (stem is 0..2)."""
        return [dict(stride=stride, channels=ch, index=3 + i) for i, stride, ch in self.spec.stage_ends()]

    def feature_extractor(self, strides=(4, 8, 16, 32)):
        """A HybridBlock sharing this net's parameters that returns the feature maps at ``strides``."""
        return ReXNetFeatures(self, strides)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def __repr__(self):
        return '%s(%s, classes=%d)' % (type(self).__name__, self.spec.name, self.num_classes)


class ReXNetV1(ReXNet):
    """ReXNet-V1 (clovaai/rexnet ``ReXNetV1``); ``ch_div`` 8/16 gives timm's ``rexnetr_*`` variant.

    Accepts the official names too: ``multiplier`` for ``width_mult``, ``dropout_ratio`` for ``dropout``.
    """

    def __init__(self, width_mult=1.0, depth_mult=1.0, classes=1000, use_se=True, se_ratio=12, dropout=0.2,
                 input_ch=16, final_ch=180, ch_div=1, **kwargs):
        width_mult = kwargs.pop('multiplier', width_mult)
        dropout = kwargs.pop('dropout_ratio', dropout)
        kwargs.pop('bn_momentum', None)   # dead argument of the original; BN momentum is PyTorch's default
        spec = v1_spec(width_mult, depth_mult, use_se, se_ratio, input_ch, final_ch, ch_div)
        super(ReXNetV1, self).__init__(spec, classes=classes, dropout=dropout, **kwargs)


class ReXNetV1Lite(ReXNet):
    """ReXNet-lite (clovaai/rexnet ``ReXNetV1_lite``): no SE, ReLU6 only, 8-aligned channels."""

    def __init__(self, multiplier=1.0, classes=1000, dropout=0.2, fix_head_stem=False, divisible_value=8,
                 input_ch=16, final_ch=164, kernel_conf='333333', **kwargs):
        multiplier = kwargs.pop('width_mult', multiplier)
        dropout = kwargs.pop('dropout_ratio', dropout)
        spec = lite_spec(multiplier, fix_head_stem, divisible_value, input_ch, final_ch, kernel_conf)
        super(ReXNetV1Lite, self).__init__(spec, classes=classes, dropout=dropout, **kwargs)


class ReXNetFeatures(HybridBlock):
    """Runs a ReXNet's ``features`` and returns the outputs of the last block at each requested stride."""

    def __init__(self, net, strides=(4, 8, 16, 32), **kwargs):
        super(ReXNetFeatures, self).__init__(**kwargs)
        by_stride = {f['stride']: f['index'] for f in net.feature_info}
        unknown = [s for s in strides if s not in by_stride]
        if unknown:
            raise ValueError('no feature map at stride %s; available strides: %s'
                             % (unknown, sorted(by_stride)))
        self._taps = [by_stride[s] for s in strides]
        self.channels = [f['channels'] for s in strides for f in net.feature_info if f['stride'] == s]
        with self.name_scope():
            self.body = nn.HybridSequential(prefix='')
            for layer in list(net.features)[:max(self._taps) + 1]:
                self.body.add(layer)   # the same blocks: parameters are shared, not copied

    def hybrid_forward(self, F, x):
        outs = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self._taps:
                outs.append(x)
        return tuple(outs)
