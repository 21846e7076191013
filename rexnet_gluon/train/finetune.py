"""Fine-tuning (``scripts/finetune.py``): a pretrained network with a new final classifier; the rest is the
training run."""
import logging
import os
import sys
import warnings

import mxnet as mx

from .errors import TrainingError
from .flags import parse_args
from .logs import LOGGER
from .models import create_model, is_rexnet, load_params_file
from .session import run

__all__ = ['finetune_main', 'finetune_net']


def finetune_main(argv=None):
    """``scripts/finetune.py``: a pretrained network whose final classifier is replaced by a new one for the data
    set's classes; the pretrained rest learns at ``--body-lr-mult`` times the classifier's learning rate; the rest
    is the training run (:func:`rexnet_gluon.train.session.run`)."""
    try:
        opt = parse_args(argv, kind='finetune')
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    if opt.use_rec:
        print('error: scripts/finetune.py reads an ImageFolder (DATA-DIR/train, DATA-DIR/val); --use-rec is for '
              'scripts/train_imagenet.py', file=sys.stderr)
        return 2
    return run(opt, build_net=finetune_net, prefix='finetune')


def _pretrained(value):
    """--pretrained as get_model takes it: True, False, an 8-hex tag or a file path."""
    value = (value or 'none').strip()
    pretrained = {'true': True, 'none': False, 'false': False}.get(value.lower(), value)
    if isinstance(pretrained, str) and not os.path.isfile(pretrained) and not \
            (len(pretrained) == 8 and all(c in '0123456789abcdef' for c in pretrained)):
        raise TrainingError('--pretrained %s: no such file (give true, an 8-hex tag, a weights file, or none)'
                            % pretrained)
    return pretrained


def finetune_net(opt, ctx, classes, kwargs):
    """The network for ``run(build_net=...)``: the pretrained network with a fresh final classifier (a ReXNet keeps
    everything else: V1 its dropout, lite its 1280->1024 stage), the classifier at lr_mult 1, the rest at
    ``--body-lr-mult`` (default 0.1 from pretrained weights, 1 with ``--pretrained none``)."""
    pretrained = _pretrained(opt.pretrained)
    body_mult = opt.body_lr_mult if opt.body_lr_mult is not None else (0.1 if pretrained else 1.0)
    if is_rexnet(opt.model):
        net, head = _rexnet_new_classifier(opt.model, classes, ctx, pretrained, kwargs)
    else:
        net, head = _gluoncv_new_dense(opt, classes, ctx, pretrained, kwargs)
    if not pretrained:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    params = net._collect_params_with_prefix()
    for name, p in params.items():
        p.lr_mult = 1.0 if name in head['keys'] else body_mult
    logging.getLogger(LOGGER).info(
        'Fine-tuning %s: %s from %s with lr_mult %g; new classifier %s (%s) with lr_mult 1',
        opt.model, head['kept'], 'the published weights' if pretrained is True else (pretrained or
                                                                                    'scratch (--pretrained none)'),
        body_mult, head['layer'], head['what'])
    return net


def _rexnet_new_classifier(model, classes, ctx, pretrained, kwargs):
    """A zoo ReXNet of ``classes`` with the pretrained weights of everything but the final classifier (the
    zoo's own 1x1-conv classifier, so the checkpoint loads as the zoo model everywhere)."""
    from ..zoo import get_model_info
    from ..zoo.model_zoo import pretrained_arrays
    from ..zoo.weights import classifier_keys, load_arrays
    net = create_model(model, classes, ctx, False, kwargs)
    if isinstance(pretrained, str) and pretrained.endswith('.params'):
        load_params_file(net, pretrained, ctx, new_classifier=True)   # any class count, any --model-kwargs width
    elif pretrained:
        if 'width_mult' in kwargs or 'multiplier' in kwargs:
            raise TrainingError('%s with --model-kwargs width has no published weights; give --pretrained FILE'
                                % model)
        try:
            arrays, _, source = pretrained_arrays(get_model_info(model), pretrained)
            load_arrays(net, arrays, ctx, classes, new_classifier=True, source=source)
        except Exception as err:   # a failed download, a checkpoint of another network
            raise TrainingError('cannot load the pretrained weights of %s: %s' % (model, err)) from None
    params = net._collect_params_with_prefix()
    keys = classifier_keys(params)
    layer = sorted(keys)[0].rsplit('.', 1)[0]
    weight = params[layer + '.weight']
    lite = net.spec.lite
    kept = 'body and %s' % ('the 1280->%d head stage (output.0-2) and dropout' % net.spec.head_hidden if lite else
                            'dropout')
    return net, dict(keys=keys, layer=layer, kept=kept, what='1x1 conv %d -> %d' % (weight.shape[1], classes))


def _gluoncv_new_dense(opt, classes, ctx, pretrained, kwargs):
    """A GluonCV zoo network (ImageNet weights) whose ``output`` is replaced by Dropout + Dense(classes), GluonCV's
    transfer-learning recipe (their heads differ per family)."""
    from mxnet.gluon import nn
    if isinstance(pretrained, str) and pretrained.endswith('.params'):
        net = create_model(opt.model, 1000, ctx, False, kwargs)
        load_params_file(net, pretrained, ctx, new_classifier=True)
    else:
        net = create_model(opt.model, 1000, ctx, pretrained, kwargs)
    dropout = opt.dropout if opt.dropout is not None else 0.2
    with net.name_scope():
        head = nn.HybridSequential(prefix='finetune_head_')
        with head.name_scope():
            head.add(nn.Dropout(dropout), nn.Dense(classes))
        net.output = head
    net.output.initialize(mx.init.Xavier(), ctx=ctx)
    return net, dict(keys={'output.1.weight', 'output.1.bias'}, layer='output', kept='body',
                     what='Dropout(%g) + Dense(%d)' % (dropout, classes))
