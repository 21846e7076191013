"""The zoo as data: each name's builder, published accuracy, weight sources, evaluation preprocessing and the
other names users type for it (:func:`canonical_name`).

Sources are tried in order by :mod:`rexnet_gluon.zoo.weights`; a ``sha256`` of 8 hex digits is the prefix that
timm's release file names carry, ``None`` where the source publishes no hash.
"""
import difflib
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

__all__ = ['ModelInfo', 'MODELS', 'ALIASES', 'canonical_name', 'close_names', 'get_model_list', 'get_model_info',
           'model_table_markdown', 'IMAGENET_MEAN', 'IMAGENET_STD']

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TIMM_RELEASE = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/'


def _hf(repo):
    # timm's hub repos hold model.safetensors (preferred) and pytorch_model.bin.
    return [dict(url='https://huggingface.co/timm/%s/resolve/main/%s' % (repo, f), filename='%s-%s' % (repo, f),
                 sha256=None) for f in ('model.safetensors', 'pytorch_model.bin')]


def _drive(file_id, filename):
    return [dict(url='https://drive.google.com/uc?export=download&id=' + file_id, filename=filename, sha256=None)]


def _timm_release(stem, sha8):
    # File names carry the first 8 hex digits of the file's SHA-256 (torch.hub convention): checked on download.
    return [dict(url=_TIMM_RELEASE + '%s-%s.pth' % (stem, sha8), filename='%s-%s.pth' % (stem, sha8), sha256=sha8)]


@dataclass
class ModelInfo:
    name: str
    build: Callable
    top1: Optional[float]
    top5: Optional[float]
    sources: List[dict] = field(default_factory=list)
    input_size: int = 224           # evaluation size
    crop_pct: float = 0.875         # resize to input_size / crop_pct, then center-crop input_size
    interpolation: str = 'bicubic'
    weights: str = ''               # where the pretrained weights come from (for the README table)
    aliases: Tuple[str, ...] = ()   # other names for it: timm's (bare and with the tag of the zoo's weights),
    #                                 the official release's file stem (bare and with .pth)

    @property
    def preprocess(self):
        return dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=self.input_size,
                    resize=int(round(self.input_size / self.crop_pct)), crop=self.input_size,
                    crop_pct=self.crop_pct, interpolation=self.interpolation)


def _names(timm=None, tag=None, stem=None):
    """The aliases of one zoo entry: timm's model name bare and with the tag of the weights the zoo serves (another
    tag is other weights: rexnetr_200.sw_in12k is the 11821-class ImageNet-12k model), and the official file stem
    bare and with its .pth."""
    return tuple(a for a in (timm, timm and '%s.%s' % (timm, tag), stem, stem and stem + '.pth') if a)


def _v1(w, top1, top5, timm_name, sha8, drive_id):
    timm, stem = 'rexnet_%s' % timm_name, 'rexnetv1_%s' % w
    sources = (_timm_release('rexnetv1_%s' % timm_name, sha8) if sha8 else []) + \
        _hf('%s.nav_in1k' % timm) + _drive(drive_id, stem + '.pth')
    return ModelInfo('rexnet_%sx' % w, lambda **kw: _build_v1(float(w), **kw), top1, top5, sources,
                     weights='official (clovaai), via timm / Google Drive', aliases=_names(timm, 'nav_in1k', stem))


def _lite(w, top1, top5, drive_id):
    stem = 'rexnet_lite_%s' % w
    return ModelInfo('rexnet_lite_%sx' % w, lambda **kw: _build_lite(float(w), **kw), top1, top5,
                     _drive(drive_id, stem + '.pth'), weights='official (clovaai), Google Drive',
                     aliases=_names(stem=stem))


def _rexnetr(w, top1, top5, timm_name, ch_div):
    timm = 'rexnetr_%s' % timm_name
    return ModelInfo('rexnetr_%sx' % w, lambda **kw: _build_v1(float(w), ch_div=ch_div, **kw), top1, top5,
                     _hf('%s.sw_in12k_ft_in1k' % timm), input_size=288, crop_pct=1.0,
                     weights='timm, ImageNet-12k pretrain + 1k fine-tune',
                     aliases=_names(timm, 'sw_in12k_ft_in1k'))


def _build_v1(width, **kwargs):
    from ..model import ReXNetV1
    return ReXNetV1(width, **kwargs)


def _build_lite(width, **kwargs):
    from ..model import ReXNetV1Lite
    return ReXNetV1Lite(width, **kwargs)


# Reported ImageNet-1k top-1/top-5: the authors' README for rexnet/lite, timm's results table for rexnetr (288 px).
_MODELS = [
    _v1('1.0', 77.9, 93.9, '100', '1b4dddf4', '1xeIJ3wb83uOowU008ykYj6wDX2dsncA9'),
    _v1('1.3', 79.5, 94.7, '130', '590d768e', '1x2ziK9Oyv66Y9NsxJxXsdjzpQF2uSJj0'),
    _v1('1.5', 80.3, 95.2, '150', 'bd1a6aa8', '1TOBGsbDhTHWBgqcRnyKIR0tHsJTOPUIG'),
    _v1('2.0', 81.6, 95.7, '200', '8c0b7f2d', '1R1aOTKIe1Mvck86NanqcjWnlR8DY-Z4C'),
    _v1('3.0', 82.8, 96.2, '300', None, '1iXAsr8gs3pRz0QyHKomdj5SGVzPWbIs2'),
    _lite('1.0', 76.2, 92.8, '1d9G4pLwZwkoDR2TRPCQlxiWiuC7R-Oqf'),
    _lite('1.3', 77.8, 93.8, '1NsbsdI8qAHG6HdMxmySXcrl9NdEx3s0L'),
    _lite('1.5', 78.6, 94.2, '12QzIh9A-U0PBGaLNOIr4gX2MoZEBnRjk'),
    _lite('2.0', 80.2, 95.0, '1pGdG9HWnqSAu1FajmaMJMK5JyOJaiFyW'),
    _rexnetr('2.0', 83.160, 96.646, '200', 8),
    _rexnetr('3.0', 84.582, 97.278, '300', 16),
]
MODELS = {m.name: m for m in _MODELS}
# The family's name alone is its 1.0x model (as timm's and the paper's "ReXNet" is).
SHORT_NAMES = {'rexnet': 'rexnet_1.0x', 'rexnet_lite': 'rexnet_lite_1.0x'}


def alias_table(models, short_names):
    """{alias: canonical name} from the entries' ``aliases`` and ``short_names``; an alias naming two models, or
    shadowing a canonical name, is an error (at import)."""
    table = {}
    for alias, name in [(a, m.name) for m in models for a in m.aliases] + list(short_names.items()):
        if alias in table or alias in {m.name for m in models} or alias != alias.lower():
            raise ValueError('model alias %r is not unique (or not lower-case)' % alias)
        table[alias] = name
    return table


ALIASES = alias_table(_MODELS, SHORT_NAMES)


def canonical_name(name):
    """The zoo name of ``name``: a zoo name (``rexnet_1.0x``), ``rexnet`` / ``rexnet_lite`` (the 1.0x models),
    timm's name (``rexnet_100``, ``rexnetr_200``) bare or with the tag of the zoo's weights (``.nav_in1k``,
    ``.sw_in12k_ft_in1k``), or the official file stem (``rexnetv1_1.0``, ``rexnet_lite_1.0``) bare or with
    ``.pth``; case-insensitive, surrounding spaces ignored. An unknown name is a ValueError naming the close ones."""
    key = str(name).strip().lower()
    if key in MODELS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    raise ValueError(unknown_name_message(name))


def close_names(name, n=4):
    """Zoo names and aliases close to ``name``, each alias with its zoo name: ['rexnet_1.5x', 'rexnet_150 (=
    rexnet_1.5x)', ...]."""
    key = str(name).strip().lower()
    found = difflib.get_close_matches(key, list(MODELS) + list(ALIASES), n=n, cutoff=0.6)
    return [m if m in MODELS else '%s (= %s)' % (m, ALIASES[m]) for m in found]


def unknown_name_message(name):
    key = str(name).strip().lower()
    base = key.split('.', 1)[0]
    tagged = sorted(a for a in ALIASES if a.startswith(base + '.') and not a.endswith('.pth'))
    if '.' in key and base in ALIASES and tagged:
        why = ('unknown model %r: the zoo has timm\'s %s only with the weights %s (= %s).'
               % (name, base, ', '.join(tagged), ALIASES[base]))
    else:
        close = close_names(name)
        why = 'unknown model %r%s' % (name, '; did you mean %s?' % ', '.join(close) if close else '.')
    return ('%s rexnet_gluon.get_model_list() has: %s (also accepted: rexnet, rexnet_lite, timm\'s names such as '
            'rexnet_100 and the official file stems such as rexnetv1_1.0)' % (why, ', '.join(MODELS)))


def get_model_list():
    """The canonical zoo names (aliases are accepted everywhere but not listed)."""
    return list(MODELS)


def get_model_info(name):
    """The :class:`ModelInfo` of a zoo name or alias (:func:`canonical_name`)."""
    return MODELS[canonical_name(name)]


def model_table_markdown():
    """The zoo as a Markdown table: parameters and MACs computed from the specs, accuracies as published."""
    from ..convert.mapping import param_table, spec_from_name
    rows = ['| model | params | MACs (eval size) | eval size | top-1 / top-5 (reported) | weights |',
            '|---|---|---|---|---|---|']
    for info in MODELS.values():
        spec = spec_from_name(info.name)
        params = sum(int(np.prod(p.shape)) for p in param_table(spec)
                     if not p.gluon.endswith(('running_mean', 'running_var')))
        rows.append('| %s | %s | %.3f G | %d (crop %.3g) | %.1f / %.1f | %s |' % (
            info.name, format(params, ','), spec.macs(info.input_size) / 1e9, info.input_size, info.crop_pct,
            info.top1, info.top5, info.weights))
    return '\n'.join(rows)
