"""ReXNet channel schedules, computed apart from any framework.

A :class:`ReXNetSpec` is the whole architecture as plain numbers: the Gluon model is built from it,
the converter matches checkpoint shapes against it, and tests compare it with the published tables.
Formulas follow clovaai/rexnet (``rexnetv1.py``, ``rexnetv1_lite.py``) and timm's rounded-channel
``rexnetr_*`` variant. Python's ``round`` (half to even) is part of the definition: 38.5 -> 38.
"""
from dataclasses import dataclass, field
from math import ceil
from typing import Optional, Tuple

__all__ = ['BlockSpec', 'ReXNetSpec', 'v1_spec', 'lite_spec', 'make_divisible', 'width_tag']

STAGE_LAYERS = (1, 2, 2, 3, 3, 5)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2)
STAGE_USE_SE = (False, False, True, True, True, True)


@dataclass(frozen=True)
class BlockSpec:
    """One LinearBottleneck: [1x1 expand] -> kxk depthwise -> [SE] -> ReLU6 -> 1x1 linear projection."""
    in_channels: int
    dw_channels: int      # depthwise (expanded) width; == in_channels when there is no expand conv
    out_channels: int
    stride: int
    kernel: int = 3
    expand: bool = True
    se_channels: int = 0  # hidden width of the SE bottleneck, 0 = no SE

    @property
    def shortcut(self) -> bool:
        # Partial identity: x is added to the first in_channels outputs (official rule).
        return self.stride == 1 and self.in_channels <= self.out_channels


@dataclass(frozen=True)
class ReXNetSpec:
    """Everything that fixes tensor shapes, plus the activation family and a display name."""
    stem: int
    blocks: Tuple[BlockSpec, ...]
    pen: int
    act: str = 'swish'                   # after stem, expand convs and the final 1x1 conv
    head_hidden: Optional[int] = None    # lite only: 1x1 conv (pen -> 1024) + BN + ReLU6 before the classifier
    name: str = field(default='', compare=False)

    @property
    def lite(self) -> bool:
        return self.head_hidden is not None

    def channel_list(self):
        return [self.stem] + [b.out_channels for b in self.blocks] + [self.pen]

    def macs(self, size=224, classes=1000):
        """Multiply-adds of convolutions and classifier at ``size`` x ``size`` (what papers call FLOPs)."""
        hw = -(-size // 2)
        total = 3 * 9 * self.stem * hw * hw
        for b in self.blocks:
            out_hw = -(-hw // b.stride)
            total += b.in_channels * b.dw_channels * hw * hw if b.expand else 0
            total += b.dw_channels * b.kernel * b.kernel * out_hw * out_hw
            total += 2 * b.dw_channels * b.se_channels
            total += b.dw_channels * b.out_channels * out_hw * out_hw
            hw = out_hw
        total += self.blocks[-1].out_channels * self.pen * hw * hw
        head_in = self.pen
        if self.lite:
            total += self.pen * self.head_hidden
            head_in = self.head_hidden
        return total + head_in * classes

    def stage_ends(self):
        """(index of the last block at each stride, stride, channels): where detection features come from."""
        ends, stride = [], 2
        for i, b in enumerate(self.blocks):
            if b.stride > 1 and i > 0:
                ends.append((i - 1, stride, self.blocks[i - 1].out_channels))
            stride *= b.stride
        ends.append((len(self.blocks) - 1, stride, self.blocks[-1].out_channels))
        return ends


def width_tag(width):
    """GluonCV-style width suffix: 1.0 -> '1.0x', 2.25 -> '2.25x'."""
    text = '%.1f' % width if round(width, 1) == width else '%g' % width
    return text + 'x'


def make_divisible(v, divisor, min_value=None, round_limit=0.9):
    """TF/timm channel snapping: nearest multiple of divisor, never below 90 % of v."""
    if not divisor:
        return int(v)
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def _expand_stages(depth_mult):
    layers = [ceil(n * depth_mult) for n in STAGE_LAYERS]
    strides, use_se, expand = [], [], []
    for stage, n in enumerate(layers):
        strides += [STAGE_STRIDES[stage]] + [1] * (n - 1)
        use_se += [STAGE_USE_SE[stage]] * n
        expand += [stage > 0] * n
    return strides, use_se, expand


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ValueError('%s must be a positive number, got %r' % (name, value))


def v1_spec(width_mult=1.0, depth_mult=1.0, use_se=True, se_ratio=12, input_ch=16, final_ch=180, ch_div=1):
    """ReXNet-V1. ``ch_div=1`` is the official network (== timm ``rexnet_*``); ``ch_div`` 8 or 16 is
    timm's rounded ``rexnetr_*`` variant (out, expanded, SE, stem and head widths snapped)."""
    _check_positive('width_mult', width_mult)
    _check_positive('depth_mult', depth_mult)
    _check_positive('se_ratio', se_ratio)
    strides, use_ses, expands = _expand_stages(depth_mult)
    n = len(strides)
    # Width < 1 keeps the stem at 32 and block 0 at 16 channels; only the increments shrink.
    stem_base = 32 / width_mult if width_mult < 1.0 else 32
    inplanes = input_ch / width_mult if width_mult < 1.0 else input_ch
    stem = make_divisible(int(round(stem_base * width_mult)), ch_div)
    outs = []
    for _ in range(n):   # accumulate the float exactly as the original does (order matters for rounding)
        outs.append(make_divisible(int(round(inplanes * width_mult)), ch_div))
        inplanes += final_ch / (n * 1.0)
    blocks, prev = [], stem
    for out, stride, se, expand in zip(outs, strides, use_ses, expands):
        if ch_div == 1:
            dw = prev * 6 if expand else prev
            se_ch = int(dw // se_ratio) if (se and use_se) else 0
        else:   # timm's rounded variant snaps the expanded and SE widths too
            dw = make_divisible(round(prev * 6), ch_div) if expand else prev
            se_ch = make_divisible(int(dw * (1.0 / se_ratio)), ch_div) if (se and use_se) else 0
        blocks.append(BlockSpec(prev, dw, out, stride, 3, expand, se_ch))
        prev = out
    # Official head width truncates; timm's rounds. Equal for every released width.
    pen = int(1280 * width_mult) if ch_div == 1 else make_divisible(1280 * width_mult, ch_div)
    # The name carries every non-default option, so spec_from_name(spec.name) rebuilds this spec.
    name = ('rexnet_' if ch_div == 1 else 'rexnetr_') + width_tag(width_mult) + \
        ('_d%g' % depth_mult if depth_mult != 1 else '') + ('' if use_se else '_nose') + \
        ('_se%g' % se_ratio if use_se and se_ratio != 12 else '')
    return ReXNetSpec(stem, tuple(blocks), pen, 'swish', None, name)


def lite_spec(multiplier=1.0, fix_head_stem=False, divisible_value=8, input_ch=16, final_ch=164,
              kernel_conf='333333'):
    """ReXNet-lite: no SE, ReLU6 everywhere, channels snapped to ``divisible_value``, a 1024-wide head."""
    _check_positive('multiplier', multiplier)
    kernel_conf = str(kernel_conf)
    if len(kernel_conf) != len(STAGE_LAYERS) or any(k not in '3579' for k in kernel_conf):
        raise ValueError("kernel_conf must be %d odd kernel sizes such as '333333' or '335577', got %r"
                         % (len(STAGE_LAYERS), kernel_conf))
    strides, _, expands = _expand_stages(1.0)
    kernels = [int(k) for stage, n in enumerate(STAGE_LAYERS) for k in [kernel_conf[stage]] * n]
    n = len(strides)

    def snap(v):
        return make_divisible(int(round(v * multiplier)), divisible_value) if divisible_value else \
            int(round(v * multiplier))

    inplanes = input_ch / multiplier if multiplier < 1.0 else input_ch
    stem = snap(32 / multiplier if multiplier < 1.0 or fix_head_stem else 32)
    blocks, prev = [], stem
    for i in range(n):
        if i > 0:   # lite spreads the increase over n-1 steps (V1 uses n)
            inplanes += final_ch / (n - 1 * 1.0)
        out = snap(inplanes)
        dw = prev * 6 if expands[i] else prev
        blocks.append(BlockSpec(prev, dw, out, strides[i], kernels[i], expands[i], 0))
        prev = out
    pen = int(1280 * multiplier) if multiplier > 1 and not fix_head_stem else 1280
    name = 'rexnet_lite_' + width_tag(multiplier) + ('_fhs' if fix_head_stem else '') + \
        ('_k' + kernel_conf if kernel_conf != '333333' else '') + \
        ('_div%d' % divisible_value if divisible_value != 8 else '')
    return ReXNetSpec(stem, tuple(blocks), pen, 'relu6', 1024, name)
