"""Our own reference implementation of the official ReXNet-lite, written from its published definition;
not the authors' code.

Published definition: clovaai/rexnet ``rexnetv1_lite.py``, class ``ReXNetV1_lite`` (MIT license).  This is an
independent PyTorch re-implementation used ONLY as the parity reference for converted ReXNet-lite checkpoints
(timm has no lite variant).  Its ``state_dict()`` keys and shapes are exactly those of the official module, so an
official checkpoint loads into it with ``strict=True`` and vice versa.

It deliberately imports nothing from :mod:`rexnet_gluon`: it computes the channel schedule itself, so a bug in
our Gluon channel schedule cannot be mirrored here and shows up as a parity failure.

Imports torch; only imported when a parity check runs.

Public API
----------
- ``ReXNetV1Lite(fix_head_stem=False, divisible_value=8, input_ch=16, final_ch=164, multiplier=1.0,
  classes=1000, dropout_ratio=0.2, bn_momentum=0.1, bn_eps=1e-5, kernel_conf='333333')``
  (alias ``ReXNetV1_lite``); forward returns logits of shape (N, classes).
- ``lite_schedule(...)``: the per-block (in, out, t, kernel, stride) list plus stem and penultimate widths.
- ``make_divisible(v, divisor=None, min_value=None)``: the TF/MobileNet channel-snapping rule.
- ``randomize_(model, seed=0)``: deterministic, non-trivial random weights and BN statistics, then eval mode.
"""
import math

import torch
from torch import nn

__all__ = ['ReXNetV1Lite', 'ReXNetV1_lite', 'LiteBottleneck', 'lite_schedule', 'make_divisible', 'randomize_']

# Stage layout of ReXNet-lite: 6 stages, 16 bottlenecks.
_STAGE_DEPTHS = (1, 2, 2, 3, 3, 5)
_STAGE_STRIDES = (1, 2, 2, 2, 1, 2)


def make_divisible(v, divisor=None, min_value=None):
    """Snap ``v`` to a multiple of ``divisor`` (nearest, at least ``min_value`` (default: divisor), and never
    more than 10% below ``v``).  ``divisor`` None/0 returns ``v`` unchanged."""
    if not divisor:
        return v
    floor = divisor if min_value is None else min_value
    snapped = max(floor, int(v + divisor / 2) // divisor * divisor)
    if snapped < 0.9 * v:
        snapped += divisor
    return snapped


def lite_schedule(fix_head_stem=False, divisible_value=8, input_ch=16, final_ch=164, multiplier=1.0,
                  kernel_conf='333333'):
    """Channel schedule of ReXNet-lite.

    Returns ``(stem, blocks, pen)`` where ``blocks`` is a list of 16 tuples
    ``(in_channels, out_channels, expansion_t, kernel, stride)``.
    """
    if len(kernel_conf) != len(_STAGE_DEPTHS):
        raise ValueError('kernel_conf needs one kernel size per stage (%d), got %r'
                         % (len(_STAGE_DEPTHS), kernel_conf))
    n = sum(_STAGE_DEPTHS)

    def snap(v):
        return make_divisible(int(round(v * multiplier)), divisible_value)

    stem_base = 32 / multiplier if (multiplier < 1.0 or fix_head_stem) else 32
    stem = snap(stem_base)

    # Per-block kernel, stride and expansion, stage by stage.
    kernels, strides, ts = [], [], []
    for stage, depth in enumerate(_STAGE_DEPTHS):
        k = int(kernel_conf[stage])
        for j in range(depth):
            kernels.append(k)
            strides.append(_STAGE_STRIDES[stage] if j == 0 else 1)
            ts.append(1 if stage == 0 else 6)

    # Widths: a linear ramp of the (unsnapped) width by final_ch / (n - 1) per block, snapped each time.
    width = input_ch / multiplier if multiplier < 1.0 else input_ch
    outs = [snap(width)]
    for _ in range(1, n):
        width += final_ch / (n - 1.0)
        outs.append(snap(width))
    ins = [stem] + outs[:-1]

    pen = int(1280 * multiplier) if (multiplier > 1 and not fix_head_stem) else 1280
    blocks = list(zip(ins, outs, ts, kernels, strides))
    return stem, blocks, pen


def _conv_bn(layers, cin, cout, kernel=1, stride=1, groups=1, act=True, bn_momentum=0.1, bn_eps=1e-5):
    """Append Conv2d(no bias) + BatchNorm2d (+ ReLU6) to ``layers`` (flat, so indices match the official)."""
    layers.append(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False))
    layers.append(nn.BatchNorm2d(cout, eps=bn_eps, momentum=bn_momentum))
    if act:
        layers.append(nn.ReLU6())


class LiteBottleneck(nn.Module):
    """Inverted bottleneck of ReXNet-lite: [1x1 expand, BN, ReLU6] (if t != 1), kxk depthwise, BN, ReLU6,
    1x1 project, BN; partial identity shortcut onto the first ``in_channels`` outputs when
    stride == 1 and in_channels <= out_channels."""

    def __init__(self, in_channels, out_channels, t, kernel=3, stride=1, bn_momentum=0.1, bn_eps=1e-5):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.use_shortcut = stride == 1 and in_channels <= out_channels
        mid = in_channels * t if t != 1 else in_channels
        layers = []
        if t != 1:
            _conv_bn(layers, in_channels, mid, bn_momentum=bn_momentum, bn_eps=bn_eps)
        _conv_bn(layers, mid, mid, kernel=kernel, stride=stride, groups=mid,
                 bn_momentum=bn_momentum, bn_eps=bn_eps)
        _conv_bn(layers, mid, out_channels, act=False, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.out = nn.Sequential(*layers)

    def forward(self, x):
        y = self.out(x)
        if not self.use_shortcut:
            return y
        c = self.in_channels
        if c == y.shape[1]:
            return y + x
        # Out-of-place form of ``y[:, :c] += x``.
        return torch.cat([y[:, :c] + x, y[:, c:]], dim=1)


class ReXNetV1Lite(nn.Module):
    """ReXNet-lite (no SE, ReLU6 everywhere), state_dict-compatible with the official ``ReXNetV1_lite``."""

    def __init__(self, fix_head_stem=False, divisible_value=8, input_ch=16, final_ch=164, multiplier=1.0,
                 classes=1000, dropout_ratio=0.2, bn_momentum=0.1, bn_eps=1e-5, kernel_conf='333333'):
        super().__init__()
        stem, blocks, pen = lite_schedule(fix_head_stem=fix_head_stem, divisible_value=divisible_value,
                                          input_ch=input_ch, final_ch=final_ch, multiplier=multiplier,
                                          kernel_conf=kernel_conf)
        self.stem_channels = stem
        self.block_channels = [b[1] for b in blocks]
        self.pen_channels = pen
        self.num_convblocks = len(blocks)

        feats = []
        _conv_bn(feats, 3, stem, kernel=3, stride=2, bn_momentum=bn_momentum, bn_eps=bn_eps)  # features.0-2
        for cin, cout, t, k, s in blocks:                                                    # features.3-18
            feats.append(LiteBottleneck(cin, cout, t, kernel=k, stride=s,
                                        bn_momentum=bn_momentum, bn_eps=bn_eps))
        _conv_bn(feats, blocks[-1][1], pen, bn_momentum=bn_momentum, bn_eps=bn_eps)          # features.19-21
        self.features = nn.Sequential(*feats)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.output = nn.Sequential(
            nn.Conv2d(pen, 1024, 1, bias=True),
            nn.BatchNorm2d(1024, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU6(),
            nn.Dropout(dropout_ratio),
            nn.Conv2d(1024, classes, 1, bias=True),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return torch.flatten(self.output(x), 1)


# The official class name, for readers who know it.
ReXNetV1_lite = ReXNetV1Lite


def randomize_(model, seed=0):
    """Deterministically fill ``model`` with random weights whose BN layers are far from the identity.

    Conv/Linear weights ~ N(0, 2/fan_in) (He), biases ~ N(0, 0.1^2), with two gains: each bottleneck's
    1x1 projection conv (the conv right before the last BN of a block's ``out`` Sequential) is scaled by
    ``_PROJECTION_GAIN`` so the partial shortcuts do not pile up variance (block outputs stay O(1) through
    all 16 blocks and ReLU6 hardly ever clips), and the final classifier by ``_CLASSIFIER_GAIN`` so the
    logits for N(0, 1) inputs are of magnitude ~5-30.  Every BatchNorm2d gets weight ~ U(0.5, 1.5),
    bias ~ N(0, 0.1^2), running_mean ~ N(0, 0.1^2), running_var ~ U(0.5, 1.5), so no BN is the identity.

    Modules are visited in ``model.modules()`` order with one ``torch.Generator`` seeded with ``seed``;
    blocks are recognised by structure, not class, so the official ``ReXNetV1_lite`` module (same module
    order) gets the identical weights.  Sets eval mode; returns ``model``.
    """
    g = torch.Generator().manual_seed(int(seed))
    last = None
    projections = set()
    for mod in model.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            last = mod
        seq = getattr(mod, 'out', None)
        if (isinstance(seq, nn.Sequential) and len(seq) >= 2 and isinstance(seq[-1], nn.BatchNorm2d)
                and isinstance(seq[-2], nn.Conv2d)):
            projections.add(id(seq[-2]))
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                fan_in = mod.weight[0].numel()
                gain = _CLASSIFIER_GAIN if mod is last else _PROJECTION_GAIN if id(mod) in projections else 1.0
                std = gain * math.sqrt(2.0 / fan_in)
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * std)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
            elif isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    model.eval()
    return model


# Gains on the He std (tuned with N(0, 1) 224x224 inputs, seeds 0-4, multipliers 1.0-2.0):
# - projection 0.5: block outputs keep std ~0.5-2 through all 16 blocks (at 1.0, they reach ~7 and ReLU6
#   clips up to a quarter of the activations, which would hide errors behind saturation);
# - classifier 2.5: the penultimate features are ReLU6 outputs, so at 1.0 the logits would be only O(2).
_PROJECTION_GAIN = 0.5
_CLASSIFIER_GAIN = 2.5
