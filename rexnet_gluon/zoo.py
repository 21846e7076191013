"""Model zoo: ``get_model('rexnet_1.0x', pretrained=True)`` in GluonCV's style.

Pretrained weights are the published PyTorch checkpoints, fetched from their sources, converted with
:mod:`rexnet_gluon.convert` and cached as ``{name}-{sha1[:8]}.params`` under ``$MXNET_HOME/models``
(else ``root``), like GluonCV. A cached file is trusted only if its content still has its name's hash.
"""
import glob
import numpy as np
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, List, Optional


__all__ = ['get_model', 'get_model_list', 'get_model_info', 'get_rexnet', 'pretrained_file', 'ModelInfo',
           'IMAGENET_MEAN', 'IMAGENET_STD']

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_TIMM_RELEASE = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rexnet/'
DOWNLOAD_RETRIES = 5      # per URL
DOWNLOAD_BACKOFF = 1.0    # seconds, doubled after each failed attempt


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
    from .model import ReXNetV1
    return ReXNetV1(width, **kwargs)


def _build_lite(width, **kwargs):
    from .model import ReXNetV1Lite
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


def _models_root(root):
    # GluonCV's rule: $MXNET_HOME overrides root entirely.
    if os.environ.get('MXNET_HOME'):
        return os.path.join(os.environ['MXNET_HOME'], 'models')
    return os.path.expanduser(root)


def _sha1(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _cached(name, folder, tag=None):
    """A ``{name}-{sha1[:8]}.params`` in folder whose content matches its tag; damaged files are removed."""
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), glob.escape(name) + '-*.params'))):
        m = re.match(re.escape(name) + r'-([0-9a-f]{8})\.params$', os.path.basename(path))
        if not m or (tag and m.group(1) != tag):
            continue
        if _sha1(path).startswith(m.group(1)):
            return path
        log.warning('removing %s: its content no longer matches its hash (damaged or partly written)', path)
        os.remove(path)
    return None


def pretrained_file(name, root=os.path.join('~', '.mxnet', 'models'), tag=None, progress=True):
    """Path of the converted pretrained ``.params`` for ``name``: from the cache, else fetched and converted."""
    from .download import DownloadError, fetch_first, file_lock
    from .convert import convert_checkpoint, save_params
    info = get_model_info(name)
    folder = _models_root(root)
    os.makedirs(folder, exist_ok=True)
    hit = _cached(info.name, folder, tag)
    if hit:
        return hit
    if tag:
        raise ValueError('no cached %s-%s.params in %s; pretrained=True fetches the published weights'
                         % (info.name, tag, folder))
    with file_lock(os.path.join(folder, info.name)):
        hit = _cached(info.name, folder)   # another process may have finished while we waited
        if hit:
            return hit
        downloads = os.path.join(folder, 'downloads')
        try:
            source, _ = fetch_first(info.sources, downloads, progress=progress, retries=DOWNLOAD_RETRIES,
                                    backoff=DOWNLOAD_BACKOFF)
        except DownloadError as err:
            raise DownloadError(
                'could not fetch pretrained weights for %s.\n%s\nOffline or behind a firewall? Download one of '
                'those files by hand, then either pass pretrained="/path/to/file" to get_model, or run\n'
                '  python convert/pt2mx.py --checkpoint FILE --output %s/%s.params --model %s'
                % (info.name, err, folder, info.name, info.name)) from None
        arrays = convert_checkpoint(source, model=info.name)[0]   # checks the architecture and finiteness
        # The file name holds the content's hash, known only once written: save (atomically) under a
        # staging name, then rename. A leftover staging file is never read and is overwritten next time.
        staging = os.path.join(folder, '.%s.staging.params' % info.name)
        save_params(arrays, staging)
        final = os.path.join(folder, '%s-%s.params' % (info.name, _sha1(staging)[:8]))
        os.replace(staging, final)
        os.remove(source)   # the converted file is what we keep
        return final


def _local_params(info, path):
    """A local checkpoint given as ``pretrained='file'``: Gluon .params load as they are, PyTorch files convert."""
    if not os.path.isfile(path):
        raise FileNotFoundError('pretrained=%r: no such file. Pass True for the published weights or the path of '
                                'a .pth/.safetensors/.params file.' % path)
    if path.endswith('.params'):
        return path, None
    from .convert import convert_checkpoint
    return None, convert_checkpoint(path, model=info.name)[0]


def checkpoint_classes(path, name=None):
    """The class count of the classifier in a local checkpoint: Gluon .params (``save_parameters`` or ``export``
    keys), or a PyTorch file of zoo model ``name``. Build with ``classes=checkpoint_classes(...)`` to load a
    fine-tuned or custom-trained head as it is."""
    import mxnet as mx
    if path.endswith('.params'):
        shapes = {k.split(':', 1)[-1]: v.shape for k, v in mx.nd.load(path).items()}
    else:
        shapes = {k: v.shape for k, v in _local_params(get_model_info(name), path)[1].items()}
    # the last output.N.weight: lite's head has a hidden 1x1 conv (output.0) before the classifier (output.4)
    heads = {int(m.group(1)): shape for k, shape in shapes.items()
             for m in [re.match(r'output\.(\d+)\.weight$', k)] if m}
    if not heads:
        raise ValueError('%s holds no classifier weights (output.N.weight): it is not a ReXNet checkpoint' % path)
    return int(heads[max(heads)][0])


def get_rexnet(name, pretrained=False, ctx=None, root=os.path.join('~', '.mxnet', 'models'), classes=1000,
               **kwargs):
    """Build ``name`` (GluonCV convention: ``pretrained``, ``ctx`` context or list, ``root``, ``classes``).

    ``pretrained``: False; True (published weights); an 8-hex tag of a cached file; or a local
    .pth/.safetensors/.params path. With ``classes != 1000`` the pretrained body is loaded and a fresh
    classifier is initialised for fine-tuning.
    """
    import mxnet as mx
    info = get_model_info(name)
    ctx = ctx or mx.cpu()
    net = info.build(classes=classes, **kwargs)
    net.preprocess = info.preprocess
    if not pretrained:
        return net
    arrays = None
    if isinstance(pretrained, str) and not re.match(r'^[0-9a-f]{8}$', pretrained):
        params_file, arrays = _local_params(info, pretrained)
    else:
        params_file = pretrained_file(info.name, root, pretrained if isinstance(pretrained, str) else None)
    _load(net, params_file, arrays, classes, ctx)
    if classes == 1000:
        attr = _imagenet_attr()
        net.synset, net.classes, net.classes_long = attr.synset, attr.classes, attr.classes_long
    return net


def _load(net, params_file, arrays, classes, ctx):
    import mxnet as mx
    if arrays is None:
        arrays = {k: v.asnumpy() for k, v in mx.nd.load(params_file).items()}
    params = net._collect_params_with_prefix()
    missing = [k for k in params if k not in arrays]
    if missing:
        raise ValueError('the pretrained weights lack %s: they are not weights for this network' % missing[:5])
    net.initialize(mx.init.Xavier(), ctx=ctx)
    for k, p in params.items():
        value = arrays[k]
        if tuple(value.shape) != tuple(p.shape):
            if k.startswith('output.') and classes != 1000:
                continue   # a new classifier for fine-tuning keeps its fresh initialisation
            raise ValueError('pretrained %s has shape %s but the network has %s' % (k, value.shape, p.shape))
        p.set_data(mx.nd.array(value, dtype=p.dtype))


def _imagenet_attr():
    from .gluoncv_compat import import_gluoncv
    import_gluoncv()
    from gluoncv.data.imagenet.classification import ImageNet1kAttr
    return ImageNet1kAttr()


def get_model(name, **kwargs):
    """``rexnet_gluon.get_model('rexnet_1.0x', pretrained=True, ctx=mx.cpu())``; names: get_model_list()."""
    return get_rexnet(name, **kwargs)


def _zoo_function(model_name):
    def build(**kwargs):
        return get_rexnet(model_name, **kwargs)
    build.__name__ = model_name.replace('.', '_')
    build.__doc__ = 'ReXNet %s (see rexnet_gluon.zoo.get_rexnet for the arguments).' % model_name
    return build


# One tiny function per zoo name, GluonCV style: rexnet_gluon.zoo.rexnet_1_0x(pretrained=True).
for _name in MODELS:
    globals()[_name.replace('.', '_')] = _zoo_function(_name)
    __all__.append(_name.replace('.', '_'))


def model_table_markdown():
    """The zoo as a Markdown table: parameters and MACs computed from the specs, accuracies as published."""
    from .convert import param_table, spec_from_name
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


# `python -m rexnet_gluon models`: the command protocol of rexnet_gluon/__main__.py.
UsageError = ValueError
HANDLED_ERRORS = (ValueError,)


def add_arguments(parser):
    parser.add_argument('--markdown', action='store_true', help='print the Markdown table (default: the same)')


def run(args):
    print(model_table_markdown())
    return 0
