"""Fine-tuning (``scripts/finetune.py``): a pretrained body, a new classifier head; the rest is the training run."""
import logging
import os
import sys
import warnings

import mxnet as mx

from .errors import TrainingError
from .flags import parse_args
from .logs import LOGGER
from .models import create_model, load_params_file
from .session import run

__all__ = ['finetune_main', 'finetune_net']


def finetune_main(argv=None):
    """``scripts/finetune.py``: a pretrained body, a new ``nn.Dense(classes)`` head (GluonCV's transfer-learning
    recipe), the body at ``--body-lr-mult`` times the head's learning rate; the rest is the training run
    (:func:`rexnet_gluon.train.session.run`)."""
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


def finetune_net(opt, ctx, classes, kwargs):
    """The network for ``run(build_net=...)``: the body from --pretrained, a new Dropout + Dense head."""
    from mxnet.gluon import nn
    value = (opt.pretrained or 'none').strip()
    pretrained = {'true': True, 'none': False, 'false': False}.get(value.lower(), value)
    if isinstance(pretrained, str) and not os.path.isfile(pretrained) and not \
            (len(pretrained) == 8 and all(c in '0123456789abcdef' for c in pretrained)):
        raise TrainingError('--pretrained %s: no such file (give true, an 8-hex tag, a weights file, or none)'
                            % pretrained)
    if isinstance(pretrained, str) and pretrained.endswith('.params'):
        # our own checkpoints (any classes, any --model-kwargs width): load the body, the head is replaced below
        net = create_model(opt.model, classes, ctx, False, kwargs)
        load_params_file(net, pretrained, ctx, skip_head=True)
    else:
        try:
            net = create_model(opt.model, classes, ctx, pretrained, kwargs)
        except TrainingError:
            raise
        except Exception as err:   # a failed download of the published weights
            raise TrainingError('cannot load the pretrained weights of %s: %s' % (opt.model, err))
    dropout = opt.dropout if opt.dropout is not None else 0.2
    with net.name_scope():
        head = nn.HybridSequential(prefix='finetune_head_')
        with head.name_scope():
            head.add(nn.Dropout(dropout), nn.Dense(classes))
        net.output = head
    net.output.initialize(mx.init.Xavier(), ctx=ctx)
    if not pretrained:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
    for name, p in net._collect_params_with_prefix().items():
        p.lr_mult = 1.0 if name.startswith('output.') else opt.body_lr_mult
    logging.getLogger(LOGGER).info(
        'Fine-tuning %s: body from %s with lr_mult %g, new head Dropout(%g) + Dense(%d) with lr_mult 1',
        opt.model, 'published weights' if pretrained is True else (pretrained or 'scratch (--pretrained none)'),
        opt.body_lr_mult, dropout, classes)
    return net
