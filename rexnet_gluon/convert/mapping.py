"""PyTorch ReXNet checkpoints -> MXNet Gluon parameters, without torch.

Every tensor of a network is listed once by :func:`param_table`, with its Gluon name, its name in the
official clovaai layout (``features.N.out.K``), its name in timm's layout (``stem``/``features``/``head``)
and its Gluon shape. Conversion is a lookup in that table; the architecture is detected by matching
the checkpoint's shapes against the tables of candidate specs.
"""
import os
import re
from collections import OrderedDict, namedtuple

import numpy as np

from .checkpoint_io import CheckpointError, load_state_dict
from ..utils.fileio import atomic_path
from ..spec import STAGE_LAYERS, lite_spec, make_divisible, v1_spec, width_tag

__all__ = ['Param', 'param_table', 'detect', 'convert_state_dict', 'convert_checkpoint', 'save_params',
           'spec_from_name', 'ConversionError', 'LAYOUTS']

LAYOUTS = ('official', 'timm', 'official_lite')
Param = namedtuple('Param', 'gluon official timm shape')
BN_FIELDS = (('gamma', 'weight'), ('beta', 'bias'), ('running_mean', 'running_mean'),
             ('running_var', 'running_var'))


class ConversionError(ValueError):
    """A checkpoint that cannot become this network; the message says what and what to do."""


def spec_from_name(name):
    """'rexnet_1.5x' / 'rexnet_lite_1.0x' / 'rexnetr_2.0x' (case-insensitive) -> ReXNetSpec.

    Non-default options follow as suffixes, as ReXNetSpec names carry them: ``_d2.0`` (depth_mult),
    ``_nose`` (no SE), ``_se8`` (SE ratio); lite: ``_fhs`` (fix_head_stem), ``_k335577``, ``_div16``.
    """
    m = re.match(r'^(rexnet|rexnet_lite|rexnetr)_(\d+(?:\.\d+)?)x((?:_[a-z]+[\d.]*)*)$', str(name).strip().lower())
    if not m:
        raise ValueError("model name %r is not of the form rexnet_<width>x, rexnet_lite_<width>x or "
                         "rexnetr_<width>x (e.g. rexnet_1.0x, rexnet_lite_1.3x, rexnetr_2.0x)" % name)
    family, width = m.group(1), float(m.group(2))
    opts = {}
    for token in m.group(3).split('_')[1:]:
        key, value = re.match(r'^([a-z]+)([\d.]*)$', token).groups()
        opts[key] = value
    allowed = {'fhs', 'k', 'div'} if family == 'rexnet_lite' else {'d', 'nose', 'se'}
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ValueError('model name %r has unknown option(s) %s; %s names accept %s'
                         % (name, ', '.join('_' + u for u in unknown), family, ', '.join('_' + a for a in sorted(allowed))))
    try:
        if family == 'rexnet_lite':
            return lite_spec(width, fix_head_stem='fhs' in opts, kernel_conf=opts.get('k') or '333333',
                             divisible_value=int(opts.get('div') or 8))
        ch_div = 1 if family == 'rexnet' else (16 if width >= 3.0 else 8)   # timm: rexnetr_300 uses 16
        return v1_spec(width, float(opts.get('d') or 1.0), 'nose' not in opts, int(opts.get('se') or 12),
                       ch_div=ch_div)
    except ValueError as err:
        raise ValueError('model name %r: %s' % (name, err)) from None


def _conv_bn(rows, gluon, official, timm, conv_shape, channels):
    rows.append(Param(gluon[0] + '.weight', official[0] + '.weight', timm and timm[0] + '.weight', conv_shape))
    for g, t in BN_FIELDS:
        rows.append(Param('%s.%s' % (gluon[1], g), '%s.%s' % (official[1], t), timm and '%s.%s' % (timm[1], t),
                          (channels,)))


def param_table(spec, classes=1000):
    """Every parameter of ``ReXNet(spec, classes)`` in order: Gluon name, official key, timm key, shape."""
    rows = []
    lite = spec.lite
    stem_t = None if lite else ('stem.conv', 'stem.bn')
    _conv_bn(rows, ('features.0', 'features.1'), ('features.0', 'features.1'), stem_t, (spec.stem, 3, 3, 3),
             spec.stem)
    for b, blk in enumerate(spec.blocks):
        pre, tpre, k = 'features.%d.out.' % (b + 3), 'features.%d.' % b, 0

        def add(module, shape, channels, timm_name):
            g = '%s%d' % (pre, k)
            _conv_bn(rows, (g, '%s%d' % (pre, k + 1)), (g, '%s%d' % (pre, k + 1)),
                     None if lite else (tpre + timm_name + '.conv', tpre + timm_name + '.bn'), shape, channels)

        if blk.expand:
            add('exp', (blk.dw_channels, blk.in_channels, 1, 1), blk.dw_channels, 'conv_exp')
            k += 3
        add('dw', (blk.dw_channels, 1, blk.kernel, blk.kernel), blk.dw_channels, 'conv_dw')
        k += 2
        if lite:
            k += 1   # lite has ReLU6 right after the depthwise BN; V1 has it after the (optional) SE
        if blk.se_channels:
            se, r, c = '%s%d.fc.' % (pre, k), blk.se_channels, blk.dw_channels
            ts = None if lite else tpre + 'se.'
            rows += [Param(se + '0.weight', se + '0.weight', ts and ts + 'fc1.weight', (r, c, 1, 1)),
                     Param(se + '0.bias', se + '0.bias', ts and ts + 'fc1.bias', (r,))]
            rows += [Param(se + '1.' + g, se + '1.' + t, ts and ts + 'bn.' + t, (r,)) for g, t in BN_FIELDS]
            rows += [Param(se + '3.weight', se + '3.weight', ts and ts + 'fc2.weight', (c, r, 1, 1)),
                     Param(se + '3.bias', se + '3.bias', ts and ts + 'fc2.bias', (c,))]
            k += 1
        if not lite:
            k += 1   # ReLU6
        add('pwl', (blk.out_channels, blk.dw_channels, 1, 1), blk.out_channels, 'conv_pwl')
    n = len(spec.blocks)
    head_t = None if lite else ('features.%d.conv' % n, 'features.%d.bn' % n)
    _conv_bn(rows, ('features.%d' % (n + 3), 'features.%d' % (n + 4)),
             ('features.%d' % (n + 3), 'features.%d' % (n + 4)), head_t,
             (spec.pen, spec.blocks[-1].out_channels, 1, 1), spec.pen)
    if lite:
        rows += [Param('output.0.weight', 'output.0.weight', None, (spec.head_hidden, spec.pen, 1, 1)),
                 Param('output.0.bias', 'output.0.bias', None, (spec.head_hidden,))]
        rows += [Param('output.1.' + g, 'output.1.' + t, None, (spec.head_hidden,)) for g, t in BN_FIELDS]
        rows += [Param('output.4.weight', 'output.4.weight', None, (classes, spec.head_hidden, 1, 1)),
                 Param('output.4.bias', 'output.4.bias', None, (classes,))]
    else:
        rows += [Param('output.1.weight', 'output.1.weight', 'head.fc.weight', (classes, spec.pen, 1, 1)),
                 Param('output.1.bias', 'output.1.bias', 'head.fc.bias', (classes,))]
    return rows


# ---------------------------------------------------------------------------------------------------
# Detection

def _strip_ignorable(state_dict):
    return OrderedDict((k, v) for k, v in state_dict.items() if not k.endswith('num_batches_tracked'))


def _layout_of(keys):
    if 'stem.conv.weight' in keys or 'head.fc.weight' in keys:
        return 'timm'
    if 'features.0.weight' in keys and ('output.4.weight' in keys or 'output.0.weight' in keys):
        return 'official_lite'
    if 'features.0.weight' in keys:
        return 'official'
    sample = ', '.join(list(keys)[:6])
    raise ConversionError(
        'this state dict is not a ReXNet checkpoint in any known layout (its first keys are: %s). Expected the '
        "official clovaai layout ('features.0.weight', 'features.3.out.0.weight', 'output.1.weight'), timm's "
        "('stem.conv.weight', 'features.0.conv_dw.conv.weight', 'head.fc.weight') or official ReXNet-lite "
        "('output.4.weight'). If the keys carry an extra prefix, strip it before converting." % sample)


def _shape_key(spec, classes, layout):
    """The shapes a checkpoint of this spec has, in the given layout (classifier weight as stored)."""
    out = {}
    for p in param_table(spec, classes):
        name = p.timm if layout == 'timm' else p.official
        shape = p.shape
        if layout == 'timm' and name == 'head.fc.weight':
            shape = shape[:2]
        out[name] = tuple(shape)
    return out


def _observed(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _blocks_and_classes(state_dict, layout):
    """Cheap facts read off the keys: number of blocks, number of classes, SE/kernels used."""
    if layout == 'timm':
        idx = {int(m.group(1)) for k in state_dict for m in [re.match(r'features\.(\d+)\.conv_pwl', k)] if m}
        head = state_dict.get('head.fc.weight')
    else:
        idx = {int(m.group(1)) for k in state_dict for m in [re.match(r'features\.(\d+)\.out\.', k)] if m}
        head = state_dict.get('output.4.weight' if layout == 'official_lite' else 'output.1.weight')
    if head is None or not idx:
        raise ConversionError('the checkpoint has no classifier or no blocks (layout %s); it is incomplete. '
                              'Convert the full model state_dict.' % layout)
    return len(idx), int(head.shape[0])


def _width_candidates(lo=0.25, hi=4.0):
    """Widths to try, simplest first (1.0 before 1.05 before 1.001), so the reported width is the clean one."""
    seen, out = set(), []
    for step in (0.1, 0.05, 0.01, 0.001):
        for i in range(int(round(lo / step)), int(round(hi / step)) + 1):
            w = round(i * step, 3)
            if w not in seen:
                seen.add(w)
                out.append(w)
    return out


def depth_candidates(n_blocks):
    """depth_mult values giving n_blocks, one per distinct stage layout (1.0 first, else the smallest)."""
    by_layout = {}
    for i in range(1, 401):
        d = i / 100.0
        layout = tuple(int(np.ceil(l * d)) for l in STAGE_LAYERS)
        if sum(layout) == n_blocks:
            by_layout.setdefault(layout, d)
            if d == 1.0:
                by_layout[layout] = d
    return sorted(by_layout.values(), key=lambda d: (d != 1.0, d))


def _se_ratio_candidates(observed, layout):
    """SE ratios r with dw // r == hidden for the first SE block: a handful, not hundreds."""
    for k, shape in observed.items():
        if k.endswith(('se.fc1.weight', 'fc.0.weight')) and len(shape) == 4:
            hidden, dw = shape[0], shape[1]
            # 12 always first: timm's rounded variant snaps the hidden width, so it need not be dw // 12.
            return [12] + [r for r in range(1, 257) if dw // r == hidden and r != 12]
    return [12]


def detect(state_dict):
    """(layout, spec, classes) whose shapes equal the checkpoint's; ConversionError otherwise."""
    sd = _strip_ignorable(state_dict)
    layout = _layout_of(sd)
    n_blocks, classes = _blocks_and_classes(sd, layout)
    observed = _observed(sd)
    stem = observed.get('stem.conv.weight' if layout == 'timm' else 'features.0.weight', (0,))[0]
    pen_key = {'timm': 'features.%d.conv.weight' % n_blocks}.get(layout, 'features.%d.weight' % (n_blocks + 3))
    pen = observed.get(pen_key, (0,))[0]
    if layout == 'official_lite':
        kernels = [observed.get('features.%d.out.%d.weight' % (3 + i, 0 if i == 0 else 3), (0, 0, 3))[2]
                   for i in np.cumsum((0,) + STAGE_LAYERS[:-1])]
        kernel_conf = ''.join(str(k) for k in kernels)
        if n_blocks != sum(STAGE_LAYERS):
            raise ConversionError('a ReXNet-lite checkpoint must have %d blocks, this one has %d'
                                  % (sum(STAGE_LAYERS), n_blocks))
        families = [(lambda w, fhs=fhs: lite_spec(w, fix_head_stem=fhs, kernel_conf=kernel_conf),
                     lambda w, fhs=fhs: int(1280 * w) if w > 1 and not fhs else 1280) for fhs in (False, True)]
    else:
        has_se = any('.se.' in k or '.fc.' in k for k in sd if not k.startswith(('head', 'output')))
        # The common case first; other SE ratios and depths only when nothing else fits.
        se_ratios = _se_ratio_candidates(observed, layout) if has_se else [12]
        families = [(lambda w, d=d, r=r, c=c: v1_spec(w, d, has_se, r, ch_div=c),
                     (lambda w: int(1280 * w)) if c == 1 else (lambda w, c=c: make_divisible(1280 * w, c)))
                    for r in se_ratios for d in depth_candidates(n_blocks) for c in (1, 8, 16)]
    widths = _width_candidates()
    best, best_score = None, -1
    for make, pen_of in families:
        for w in widths:
            if pen_of(w) != pen:   # cheap filter before building a whole spec
                continue
            spec = make(w)
            if len(spec.blocks) != n_blocks:
                continue
            expected = _shape_key(spec, classes, layout)
            if expected == observed:
                return layout, spec, classes
            score = sum(observed.get(k) == v for k, v in expected.items()) - len(set(observed) - set(expected))
            if score > best_score:
                best, best_score = spec, score
    if best is not None:
        raise ConversionError(
            'the checkpoint (%s layout, %d blocks, %d classes) is closest to %s but does not match it: %s. '
            'The file may be damaged or edited, or come from a modified network; pass --model to compare it '
            'with another model.' % (layout, n_blocks, classes, best.name,
                                     _describe_mismatch(best, classes, layout, observed)))
    raise ConversionError(
        'the checkpoint looks like %s layout with %d blocks and %d classes, but no ReXNet width/depth gives '
        'exactly its shapes (stem %d channels). It may be a modified network or a different model; '
        'pass --model to see which tensors disagree.' % (layout, n_blocks, classes, stem))


# ---------------------------------------------------------------------------------------------------
# Conversion

def _describe_mismatch(spec, classes, layout, observed):
    expected = _shape_key(spec, classes, layout)
    missing = [k for k in expected if k not in observed]
    extra = [k for k in observed if k not in expected]
    wrong = ['%s: checkpoint %s, %s expects %s' % (k, observed[k], spec.name, expected[k])
             for k in expected if k in observed and observed[k] != expected[k]]
    parts = []
    if wrong:
        parts.append('%d tensors have other shapes (first: %s)' % (len(wrong), '; '.join(wrong[:3])))
    if missing:
        parts.append('%d keys are missing (first: %s)' % (len(missing), ', '.join(missing[:5])))
    if extra:
        parts.append('%d keys are unexpected (first: %s)' % (len(extra), ', '.join(extra[:5])))
    return '; '.join(parts)


def convert_state_dict(state_dict, model=None, classes=None, dtype='float32'):
    """Map a PyTorch ReXNet state dict (arrays) to Gluon parameter arrays.

    ``model`` (a name like ``'rexnet_1.5x'`` or a ReXNetSpec) is checked against what the shapes say.
    Returns ``(arrays, spec, classes, layout)``; ``arrays`` is an OrderedDict name -> numpy array.
    """
    sd = _strip_ignorable(state_dict)
    layout = _layout_of(sd)
    try:
        detected = detect(sd)
    except ConversionError as err:
        detected, detect_err = None, err
    if model is not None:
        spec = spec_from_name(model) if isinstance(model, str) else model
        _, n_classes = _blocks_and_classes(sd, layout)
        classes = classes or n_classes
        if detected is not None and (detected[1] != spec or detected[2] != classes):
            raise ConversionError(
                'you asked for %s (%d classes) but the checkpoint is %s (%d classes), detected from its tensor '
                'shapes. Pass --model %s, or leave --model out to use the detected one.'
                % (spec.name, classes, detected[1].name, detected[2], detected[1].name))
        if detected is None:
            raise ConversionError('the checkpoint does not match %s: %s. Check that the file is a %s checkpoint '
                                  '(width and variant) or leave --model out to detect it.'
                                  % (spec.name, _describe_mismatch(spec, classes, layout, _observed(sd)),
                                     spec.name))
    elif detected is None:
        raise detect_err
    layout, spec, classes = detected
    arrays = OrderedDict()
    for p in param_table(spec, classes):
        value = np.asarray(sd[p.timm if layout == 'timm' else p.official])
        if not np.all(np.isfinite(value)):
            raise ConversionError('tensor %s holds NaN or inf values: the checkpoint is damaged or came from a '
                                  'diverged run.' % (p.timm if layout == 'timm' else p.official))
        arrays[p.gluon] = value.reshape(p.shape).astype(dtype)
    return arrays, spec, classes, layout


def save_params(arrays, path):
    """Write Gluon .params atomically (a temporary file in the same folder, then rename), read back and compared
    before the rename: MXNet's ``nd.save`` does not report a failed final write (a full disk left a truncated
    file that looked saved). Raises OSError naming the folder when the copy on disk is not what was written."""
    import mxnet as mx
    with atomic_path(path) as tmp:
        mx.nd.save(tmp, {k: mx.nd.array(v, dtype=v.dtype) for k, v in arrays.items()})
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        _check_written(tmp, arrays, path)
    return os.path.abspath(path)


def _check_written(tmp, arrays, path):
    import mxnet as mx
    try:
        back = mx.nd.load(tmp)
        same = set(back) == set(arrays) and all(np.array_equal(back[k].asnumpy(), np.asarray(v), equal_nan=True)
                                                 for k, v in arrays.items())
    except mx.base.MXNetError:
        same = False
    if not same:
        raise OSError('writing %s failed: the file read back is not what was written (%d bytes on disk). Is the '
                      'disk full? Free space in %s, or write elsewhere.'
                      % (path, os.path.getsize(tmp), os.path.dirname(os.path.abspath(path))))


def convert_checkpoint(checkpoint, output=None, model=None, dtype='float32'):
    """Read a .pth/.safetensors ReXNet checkpoint, convert it, optionally write ``output`` (.params)."""
    state_dict = load_state_dict(checkpoint)
    try:
        result = convert_state_dict(state_dict, model=model, dtype=dtype)
    except ConversionError as err:
        raise ConversionError('%s: %s' % (checkpoint, err)) from None
    if output:
        save_params(result[0], output)
    return result


def model_name(spec):
    return spec.name or 'rexnet_' + width_tag(1.0)


__all__ += ['CheckpointError', 'model_name']
