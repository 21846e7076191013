"""The zoo as data: each name's builder, published accuracy, weight sources and evaluation preprocessing.

Sources are tried in order by :mod:`rexnet_gluon.zoo.weights`; a ``sha256`` of 8 hex digits is the prefix that
timm's release file names carry, ``None`` where the source publishes no hash.
"""
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np

__all__ = ['ModelInfo', 'MODELS', 'get_model_list', 'get_model_info', 'model_table_markdown', 'IMAGENET_MEAN',
           'IMAGENET_STD']

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

    @property
    def preprocess(self):
        return dict(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=self.input_size,
                    resize=int(round(self.input_size / self.crop_pct)), crop=self.input_size,
                    crop_pct=self.crop_pct, interpolation=self.interpolation)


def _v1(w, top1, top5, timm_name, sha8, drive_id):
    sources = (_timm_release('rexnetv1_%s' % timm_name, sha8) if sha8 else []) + \
        _hf('rexnet_%s.nav_in1k' % timm_name) + _drive(drive_id, 'rexnetv1_%s.pth' % w)
    return ModelInfo('rexnet_%sx' % w, lambda **kw: _build_v1(float(w), **kw), top1, top5, sources,
                     weights='official (clovaai), via timm / Google Drive')


def _lite(w, top1, top5, drive_id):
    return ModelInfo('rexnet_lite_%sx' % w, lambda **kw: _build_lite(float(w), **kw), top1, top5,
                     _drive(drive_id, 'rexnet_lite_%s.pth' % w), weights='official (clovaai), Google Drive')


def _rexnetr(w, top1, top5, timm_name, ch_div):
    return ModelInfo('rexnetr_%sx' % w, lambda **kw: _build_v1(float(w), ch_div=ch_div, **kw), top1, top5,
                     _hf('rexnetr_%s.sw_in12k_ft_in1k' % timm_name), input_size=288, crop_pct=1.0,
                     weights='timm, ImageNet-12k pretrain + 1k fine-tune')


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


def get_model_list():
    return list(MODELS)


def get_model_info(name):
    key = str(name).strip().lower()
    if key not in MODELS:
        raise ValueError('unknown model %r; rexnet_gluon has: %s' % (name, ', '.join(MODELS)))
    return MODELS[key]


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
