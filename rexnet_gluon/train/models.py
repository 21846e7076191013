"""Networks by name (rexnet_gluon's zoo, then GluonCV's), weights from files, the student's model arguments
(norm layer, dropout, ...), weight-decay exemptions and parameter checks."""
import functools
import os

import mxnet as mx
import numpy as np

from .errors import TrainingError

__all__ = ['rexnet_name', 'is_rexnet', 'create_model', 'load_params_file', 'student_kwargs', 'apply_no_wd',
           'param_fingerprint', 'nonfinite_param']


def rexnet_name(name):
    """The canonical zoo name of one of rexnet_gluon's names or aliases (``rexnet`` -> ``rexnet_1.0x``), else None
    (a GluonCV zoo name, or unknown)."""
    from ..zoo import canonical_name
    try:
        return canonical_name(name)
    except ValueError:
        return None


def is_rexnet(name):
    """One of rexnet_gluon's model names or aliases (not a GluonCV zoo name)."""
    return rexnet_name(name) is not None


def create_model(name, classes, ctx, pretrained=False, kwargs=None):
    """A network by zoo name: rexnet_gluon's names first, then GluonCV's zoo. ``kwargs['width_mult']`` builds a
    ReXNet of another width under a zoo name (no published weights then; a local .params still loads)."""
    kwargs = dict(kwargs or {})
    key = rexnet_name(name) or str(name).strip().lower()
    try:
        if is_rexnet(key):
            from .. import zoo
            from ..model import ReXNetV1, ReXNetV1Lite
            width = kwargs.pop('width_mult', kwargs.pop('multiplier', None))
            if width is None:
                return zoo.get_model(key, pretrained=pretrained, ctx=ctx, classes=classes, **kwargs)
            cls = ReXNetV1Lite if key.startswith('rexnet_lite') else ReXNetV1
            if key.startswith('rexnetr') and 'ch_div' not in kwargs:
                kwargs['ch_div'] = 16 if key.startswith('rexnetr_3') else 8
            net = cls(float(width), classes=classes, **kwargs)
            net.preprocess = zoo.get_model_info(key).preprocess
            if pretrained:
                if not (isinstance(pretrained, str) and pretrained.endswith('.params')):
                    raise TrainingError('%s with width_mult=%s has no published weights; pass a .params file of '
                                        'this network' % (key, width))
                load_params_file(net, pretrained, ctx)
                zoo.apply_checkpoint_meta(net, zoo.weights.checkpoint_meta(pretrained))
            return net
        from ..gluoncv.compat import import_gluoncv
        import_gluoncv()
        from gluoncv.model_zoo import get_model as gcv_get_model, get_model_list as gcv_list
        if key not in gcv_list():
            from ..zoo import get_model_list
            from ..zoo.registry import close_names
            close = close_names(key)
            raise TrainingError('unknown --model %r. rexnet_gluon has: %s (and aliases: rexnet, timm\'s rexnet_100, '
                                '...); GluonCV zoo names (e.g. resnet18_v1b, mobilenetv2_1.0) work too.%s'
                                % (name, ', '.join(get_model_list()),
                                   ' Close to it: %s.' % ', '.join(close) if close else ''))
        if isinstance(pretrained, str) and os.path.isfile(pretrained):
            net = gcv_get_model(key, classes=classes, **kwargs)
            load_params_file(net, pretrained, ctx)
            return net
        return gcv_get_model(key, pretrained=pretrained, ctx=ctx, classes=classes, **kwargs)
    except TrainingError:
        raise
    except (TypeError, ValueError, OSError, RuntimeError, mx.base.MXNetError) as err:
        raise TrainingError('cannot build model %r (classes=%s, arguments %s): %s'
                            % (name, classes, kwargs, err)) from err


def load_params_file(net, path, ctx, new_classifier=False):
    """Load a Gluon .params into ``net`` by structural name with the zoo's loader (all tensors or an error naming
    the one that does not fit); ``new_classifier`` keeps the final classifier's fresh initialisation
    (fine-tuning). Returns the names left at their initialisation."""
    from ..zoo.weights import load_arrays, read_params
    if not os.path.isfile(path):
        raise TrainingError('weights file %s does not exist' % path)
    try:
        return load_arrays(net, read_params(path), ctx, getattr(net, 'num_classes', None), new_classifier,
                           source=path)
    except ValueError as err:
        raise TrainingError(str(err)) from None


class _InDtype:
    """``F`` whose ``ones`` / ``zeros`` are made in ``dtype`` (MXNet's default is float32)."""

    def __init__(self, F, dtype):
        self._F, self._dtype = F, dtype

    def __getattr__(self, name):
        return getattr(self._F, name)

    def ones(self, *args, **kwargs):
        return self._F.ones(*args, dtype=self._dtype, **kwargs)

    def zeros(self, *args, **kwargs):
        return self._F.zeros(*args, dtype=self._dtype, **kwargs)


@functools.lru_cache(maxsize=None)
def group_norm_class():
    """gluoncv.nn.GroupNorm that also runs in float64 (``--dtype float64``): GluonCV's forward makes its
    normalisation's ones and zeros in float32, which a float64 BatchNorm refuses. Same values in float32."""
    from ..gluoncv.compat import import_gluoncv

    class GroupNorm(import_gluoncv().nn.GroupNorm):
        def hybrid_forward(self, F, x, gamma, beta):
            return super().hybrid_forward(_InDtype(F, x.dtype), x, gamma, beta)
    return GroupNorm


def _gn_groups(name, base_kwargs, explicit):
    """The GroupNorm group count for --use-gn: explicit, else the largest of 32..1 that divides every layer."""
    gn = group_norm_class()
    if explicit or not is_rexnet(name):
        return gn, explicit
    for groups in (32, 16, 8, 4, 2, 1):
        try:
            create_model(name, 1, mx.cpu(), False, dict(base_kwargs, norm_layer=gn, norm_kwargs={'ngroups': groups}))
            return gn, groups
        except TrainingError:
            continue
    return gn, 1


def student_kwargs(opt, ctx):
    """GluonCV's model kwargs (+ ours): norm layer, last_gamma, dropout, input size, --model-kwargs."""
    name = rexnet_name(opt.model) or opt.model.strip().lower()
    kwargs = {}
    if name.startswith('vgg'):
        kwargs['batch_norm'] = opt.batch_norm
    elif name.startswith('resnext'):
        kwargs['use_se'] = opt.use_se
    if opt.last_gamma:
        kwargs['last_gamma'] = True
    rexnet = is_rexnet(name)
    if rexnet:
        kwargs['input_size'] = opt.input_size
        if opt.dropout is not None:
            kwargs['dropout'] = opt.dropout
    kwargs.update(opt.model_kwargs_dict)
    notes = []
    if opt.use_gn and opt.syncbn:
        raise TrainingError('--use-gn and --syncbn exclude each other')
    if opt.use_gn:
        gn, groups = _gn_groups(name, kwargs, opt.gn_groups)
        kwargs['norm_layer'] = gn
        if groups:
            kwargs['norm_kwargs'] = {'ngroups': groups}
            notes.append('GroupNorm(ngroups=%d)' % groups)
    elif opt.syncbn:
        kwargs['norm_layer'] = mx.gluon.contrib.nn.SyncBatchNorm
        kwargs['norm_kwargs'] = {'num_devices': len(ctx)}
        notes.append('SyncBatchNorm over %d devices' % len(ctx))
    if opt.dropout is not None and not rexnet:
        notes.append('--dropout ignored (not a ReXNet)')
    return kwargs, notes


def apply_no_wd(net):
    """GluonCV's --no-wd: wd_mult 0 on norm gamma/beta and biases (matched on structural names, so a block prefix
    that happens to contain 'beta' cannot switch weight decay off everywhere). Returns the names set."""
    names = []
    for name, p in net._collect_params_with_prefix().items():
        if name.rsplit('.', 1)[-1] in ('gamma', 'beta', 'bias'):
            p.wd_mult = 0.0
            names.append(name)
    return names


def param_fingerprint(net):
    """sha1 (12 hex) of the trained parameters' bytes on the first device, in structural-name order."""
    import hashlib
    h = hashlib.sha1()
    for name, p in sorted(net._collect_params_with_prefix().items()):
        if p.grad_req == 'null':
            continue   # BatchNorm running statistics: each worker keeps its own
        h.update(name.encode())
        h.update(np.ascontiguousarray(p.data(p.list_ctx()[0]).asnumpy()).tobytes())
    return h.hexdigest()[:12]


def nonfinite_param(net, ctx):
    """The name of the first parameter holding NaN/inf on ctx, or None."""
    for p in net.collect_params().values():
        if p._data is None and p._deferred_init:
            continue
        arr = p.data(ctx).asnumpy()
        if not np.isfinite(arr).all():
            return p.name
    return None
