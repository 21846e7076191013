"""The official clovaai state-dict layout, known independently of the converter's parameter table.

Two independent sources of truth for checkpoints in the official layout, so that a wrong name in
:func:`rexnet_gluon.convert.mapping.param_table` cannot hide behind checkpoints written through that same table:

- ``official_state_dicts.json`` (beside this file): key names and shapes of every released V1 and lite width, as
  the official module's ``state_dict()`` holds them (made once by ``scripts/make_official_listing.py`` from
  clovaai/rexnet; facts about the published files, no code of theirs).
- :func:`timm_to_official`: a key-by-key rename rule from timm's ``RexNet`` names (the V1 reference) to the
  official ones, written from the two modules' structure, not from our table. It is checked against the listing.
"""
import json
import os
import re
from collections import OrderedDict

__all__ = ['LISTING_PATH', 'official_listing', 'timm_to_official', 'official_to_timm', 'check_listing']

LISTING_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'official_state_dicts.json')
_cache = {}


def official_listing(name):
    """[(key, shape), ...] of the released model ``name`` ('rexnet_1.0x', 'rexnet_lite_1.3x'), None if unreleased."""
    if not _cache:
        with open(LISTING_PATH) as f:
            _cache.update(json.load(f))
    rows = _cache.get(name)
    return None if rows is None else [(k, tuple(shape)) for k, shape in rows]


def _block_parts(keys):
    """{timm block index: set of its sub-modules ('conv_exp', 'conv_dw', 'se', 'conv_pwl')}."""
    parts = {}
    for k in keys:
        m = re.match(r'features\.(\d+)\.(conv_exp|conv_dw|se|conv_pwl)\.', k)
        if m:
            parts.setdefault(int(m.group(1)), set()).add(m.group(2))
    return parts


def _official_key(key, parts):
    """One timm key -> its official name. Official LinearBottleneck ``out`` indices: [1x1 expand conv, BN, Swish]
    (only when expanding), depthwise conv, BN, [SE] (only with SE), ReLU6, 1x1 projection conv, BN; the block
    sits at ``features.{i+3}`` behind the stem's conv, BN and Swish; the final 1x1 conv + BN follow the blocks."""
    m = re.match(r'stem\.(conv|bn)\.(\w+)$', key)
    if m:
        return 'features.%d.%s' % (0 if m.group(1) == 'conv' else 1, m.group(2))
    m = re.match(r'head\.fc\.(weight|bias)$', key)
    if m:
        return 'output.1.' + m.group(1)
    m = re.match(r'features\.(\d+)\.(conv|bn)\.(\w+)$', key)       # the final 1x1 conv after the last block
    if m:
        i = int(m.group(1))
        return 'features.%d.%s' % (i + 3 + (m.group(2) == 'bn'), m.group(3))
    m = re.match(r'features\.(\d+)\.(conv_exp|conv_dw|conv_pwl)\.(conv|bn)\.(\w+)$', key)
    if m:
        i, module, layer, field = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        dw = 3 if 'conv_exp' in parts[i] else 0
        start = {'conv_exp': 0, 'conv_dw': dw, 'conv_pwl': dw + 2 + ('se' in parts[i]) + 1}[module]
        return 'features.%d.out.%d.%s' % (i + 3, start + (layer == 'bn'), field)
    m = re.match(r'features\.(\d+)\.se\.(fc1|bn|fc2)\.(\w+)$', key)
    if m:
        i = int(m.group(1))
        se = (3 if 'conv_exp' in parts[i] else 0) + 2
        return 'features.%d.out.%d.fc.%d.%s' % (i + 3, se, {'fc1': 0, 'bn': 1, 'fc2': 3}[m.group(2)], m.group(3))
    raise ValueError('no official name for timm key %r' % key)


def timm_to_official(state_dict):
    """A timm ``RexNet`` state dict renamed to the official layout (the classifier as a 1x1 conv)."""
    parts = _block_parts(state_dict)
    out = OrderedDict()
    for k, v in state_dict.items():
        out[_official_key(k, parts)] = v.reshape(tuple(v.shape) + (1, 1)) if k == 'head.fc.weight' else v
    return out


def official_to_timm(state_dict, timm_keys):
    """The inverse of :func:`timm_to_official` for a model whose timm keys are ``timm_keys``."""
    parts = _block_parts(timm_keys)
    by_official = {_official_key(k, parts): k for k in timm_keys}
    out = OrderedDict()
    for k, v in state_dict.items():
        if k not in by_official:
            raise ValueError('official key %r has no timm counterpart in this model' % k)
        t = by_official[k]
        out[t] = v.reshape(tuple(v.shape)[:2]) if t == 'head.fc.weight' else v
    return out


def check_listing(state_dict, name):
    """Raise ValueError unless ``state_dict`` has exactly the listed keys, in order, with the listed shapes.
    Returns False when ``name`` is not a released model (nothing to check against), else True."""
    rows = official_listing(name)
    if rows is None:
        return False
    got = [(k, tuple(v.shape)) for k, v in state_dict.items()]
    if got != rows:
        diff = [(a, b) for a, b in zip(got, rows) if a != b][:3]
        raise ValueError('%s: the official-layout state dict differs from the official listing (%d vs %d keys; '
                         'first differences, ours vs official: %s)' % (name, len(got), len(rows), diff))
    return True
