"""GluonCV's ImageNet training script for ReXNet, with its bugs fixed and what a long run needs added.

``scripts/train_imagenet.py`` is a thin wrapper over :func:`main`; ``scripts/finetune.py`` and
``scripts/verify_pretrained.py`` use :func:`finetune_main` and :func:`verify_main`, which share this module's model
building, data, loop, evaluation, checkpoints and logs.

What is GluonCV's (master ``scripts/classification/imagenet/train_imagenet.py``): every flag with the same name,
meaning and default, the model kwargs, NAG, the LR schedule shape, mixup / label smoothing / distillation, the
checkpoint names and the log lines. What is fixed: the ImageFolder path works; warmup starts at ``--warmup-lr``
(and the first update uses the schedule's first value: MXNet numbers updates from 1); ``--num-training-samples`` is
counted from the data (the flag still overrides); ``--use-gn`` picks a GroupNorm group count that divides every
ReXNet layer; DALI and bad configurations are clear errors, never prompts. What is added: see ``--help`` (contexts,
kvstores incl. sharding and gradient averaging, AMP, the ReXNet recipe, RandAugment / random erasing, seeding and
exact ``--resume``, atomic checkpoints, NaN stop, CSV/JSON metrics, PNG curves).
"""
import argparse
import csv
import io
import json
import logging
import math
import os
import random
import sys
import time
import warnings

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, nd

from . import data as D

__all__ = ['main', 'finetune_main', 'verify_main', 'build_parser', 'parse_args', 'make_lr_scheduler', 'LRProbe',
           'TrainingError', 'NonFiniteError', 'make_contexts', 'Runtime', 'setup_runtime', 'create_model',
           'apply_no_wd', 'evaluate', 'find_latest_checkpoint', 'RECIPES', 'KVSTORES']

KVSTORES = ('device', 'local', 'dist_sync', 'dist_device_sync', 'dist_async', 'horovod')
LR_MODES = ('step', 'poly', 'cosine', 'linear', 'constant')
CHECKPOINT_FORMAT = 'rexnet_gluon.checkpoint/1'

# The ReXNet paper's ImageNet recipe (clovaai/rexnet README + timm flags). lr is 0.5 for a global batch of 512 and
# scales linearly with the global batch unless --lr is given. Mixup and distillation stay off unless asked.
RECIPES = {
    'rexnet': dict(optimizer='nag', momentum=0.9, lr=('scale', 0.5, 512), wd=1e-5, lr_mode='cosine',
                   warmup_epochs=5, num_epochs=400, label_smoothing=True, dropout=0.2,
                   randaugment='rand-m9-mstd0.5', reprob=0.2, remode='pixel', no_wd=True),
}

HOROVOD_HELP = (
    '--kvstore horovod needs horovod built with MXNet support, and it is not importable here (%s).\n'
    'Build it in this environment (about 3 minutes on 2 cores; CMake must see mxnet, hence no build isolation):\n'
    '  pip install wheel cloudpickle psutil cffi\n'
    '  HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITH_GLOO=1 \\\n'
    '  HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo pip install --no-build-isolation horovod==0.28.1\n'
    '(GPU: add HOROVOD_GPU_OPERATIONS=NCCL with CUDA and NCCL installed.) Then launch one process per GPU:\n'
    '  horovodrun -np 4 -H localhost:4 [--gloo] python scripts/train_imagenet.py --kvstore horovod --num-gpus 1 ...\n'
    'Or use the built-in parameter server instead: --kvstore dist_sync with mxnet/tools/launch.py.')

DIST_HELP = (
    '--kvstore %s needs the ps-lite environment of a distributed launch (DMLC_ROLE, DMLC_PS_ROOT_URI, '
    'DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER), which is not set. Launch with e.g.\n'
    '  python mxnet/tools/launch.py --launcher local -n 2 -s 1 python scripts/train_imagenet.py --kvstore %s ...\n'
    '(on Python >= 3.9 that launcher needs threading.Thread.isAlive = threading.Thread.is_alive), or start the '
    'scheduler, server(s) and workers yourself with those variables.')


class TrainingError(Exception):
    """A configuration or data problem, reported as one clear message (exit status 2)."""
    exit_code = 2


class NonFiniteError(TrainingError):
    """The loss or the weights became NaN/inf: the run stops, the last good checkpoint is kept (exit status 1)."""
    exit_code = 1


# ------------------------------------------------------------------------------------------------------ flags
def _gluoncv_flags(p, d):
    """GluonCV master's train_imagenet.py flags (names, meaning and defaults; `d` overrides defaults)."""
    g = p.add_argument_group('GluonCV train_imagenet.py flags')
    g.add_argument('--data-backend', choices=('mxnet', 'dali-gpu', 'dali-cpu'), default='mxnet',
                   help='data backend; only mxnet here (DALI is not supported: a clear error)')
    g.add_argument('--data-dir', type=str, default=d.get('data_dir', '~/.mxnet/datasets/imagenet/'),
                   help='ImageFolder root with train/ and val/ class folders; default %(default)s')
    g.add_argument('--rec-train', type=str, default=None, help='training .rec (default: {data-dir}/rec/train.rec)')
    g.add_argument('--rec-train-idx', type=str, default=None, help='its .idx (default: {data-dir}/rec/train.idx)')
    g.add_argument('--rec-val', type=str, default=None, help='validation .rec (default: {data-dir}/rec/val.rec)')
    g.add_argument('--rec-val-idx', type=str, default=None, help='its .idx (default: {data-dir}/rec/val.idx)')
    g.add_argument('--use-rec', action='store_true', help='read RecordIO (.rec) files instead of image folders')
    g.add_argument('--batch-size', type=int, default=d.get('batch_size', 32), help='batch size PER DEVICE')
    g.add_argument('--dtype', type=str, default='float32',
                   help='float32, or float16 (GPU only; fp32 master weights via multi_precision)')
    g.add_argument('--num-gpus', type=int, default=0, help='number of GPUs (0: CPU)')
    g.add_argument('-j', '--num-data-workers', dest='num_workers', default=4, type=int,
                   help='data loader worker processes / RecordIO decode threads')
    g.add_argument('--num-epochs', type=int, default=d.get('num_epochs', 3))
    g.add_argument('--lr', type=float, default=d.get('lr', 0.1), help='learning rate (not scaled by batch size)')
    g.add_argument('--momentum', type=float, default=0.9)
    g.add_argument('--wd', type=float, default=d.get('wd', 0.0001), help='weight decay')
    g.add_argument('--lr-mode', type=str, default=d.get('lr_mode', 'step'), choices=LR_MODES)
    g.add_argument('--lr-decay', type=float, default=0.1, help='step mode: factor per decay')
    g.add_argument('--lr-decay-period', type=int, default=0, help='step mode: decay every N epochs (0: use '
                   '--lr-decay-epoch)')
    g.add_argument('--lr-decay-epoch', type=str, default='40,60', help='step mode: epochs to decay at')
    g.add_argument('--warmup-lr', type=float, default=0.0, help='warmup starts at this lr (fixed: GluonCV ignores it)')
    g.add_argument('--warmup-epochs', type=int, default=0, help='linear warmup epochs')
    g.add_argument('--last-gamma', action='store_true', help='zero-init the last BN gamma of each residual block')
    g.add_argument('--mode', type=str, help='hybrid: hybridize(static_alloc, static_shape); else imperative')
    g.add_argument('--model', type=str, required=True, help='rexnet_1.0x, ... (rexnet_gluon.get_model_list()), '
                   'or a GluonCV zoo name')
    g.add_argument('--input-size', type=int, default=d.get('input_size', 224))
    g.add_argument('--crop-ratio', type=float, default=0.875, help='val: resize to ceil(input/ratio), center crop')
    g.add_argument('--use-pretrained', action='store_true', help='start from the published pretrained weights')
    g.add_argument('--use_se', action='store_true', help='use SE layers (GluonCV resnext* only)')
    g.add_argument('--mixup', action='store_true')
    g.add_argument('--mixup-alpha', type=float, default=0.2, help='Beta(alpha, alpha) mixing weight')
    g.add_argument('--mixup-off-epoch', type=int, default=0, help='no mixup in the last N epochs')
    g.add_argument('--label-smoothing', action='store_true', help='label smoothing, eta 0.1')
    g.add_argument('--no-wd', action='store_true', help='no weight decay on BN/GN gamma and beta and on biases')
    g.add_argument('--teacher', type=str, default=None, help='distil from this model (see --teacher-params)')
    g.add_argument('--temperature', type=float, default=20, help='distillation temperature')
    g.add_argument('--hard-weight', type=float, default=0.5, help='weight of the hard-label loss (distillation '
                   'only if < 1)')
    g.add_argument('--batch-norm', action='store_true', help='BatchNorm (GluonCV vgg* only)')
    g.add_argument('--save-frequency', type=int, default=10, help='checkpoint every N epochs (0: no checkpoints)')
    g.add_argument('--save-dir', type=str, default=d.get('save_dir', 'params'))
    g.add_argument('--resume-epoch', type=int, default=0, help='first epoch to run (with --resume-params/-states)')
    g.add_argument('--resume-params', type=str, default='', help='.params to start from')
    g.add_argument('--resume-states', type=str, default='', help='trainer .states to start from')
    g.add_argument('--log-interval', type=int, default=50, help='log every N batches')
    g.add_argument('--logging-file', type=str, default=d.get('logging_file', 'train_imagenet.log'))
    g.add_argument('--use-gn', action='store_true', help='GroupNorm (gluoncv.nn.GroupNorm) instead of BatchNorm; '
                   'for ReXNet the group count is the largest of 32,16,...,1 dividing every layer (see --gn-groups)')
    g.add_argument('--rgb-mean', type=str, default='123.68,116.779,103.939', help='0-255 scale (both data paths)')
    g.add_argument('--rgb-std', type=str, default='58.393,57.12,57.375', help='0-255 scale (both data paths)')
    g.add_argument('--num-training-samples', type=int, default=None,
                   help='samples per epoch for the LR schedule; default: counted in the data (GluonCV: 1281167)')
    dali = p.add_argument_group('GluonCV DALI flags (accepted for compatibility; DALI is not supported)')
    for flag, kw in (('--dali-separ-val', dict(action='store_true')), ('--dali-threads', dict(type=int, default=3)),
                     ('--dali-validation-threads', dict(type=int, default=10)),
                     ('--dali-prefetch-queue', dict(type=int, default=2)),
                     ('--dali-nvjpeg-memory-padding', dict(type=int, default=64)),
                     ('--dali-fuse-decoder', dict(type=int, default=1)), ('--flag', dict(type=int, default=1)),
                     ('--data-pred', dict(type=str, default=None)), ('--image-shape', dict(type=str, default=None)),
                     ('--input-layout', dict(type=str, default='NCHW')),
                     ('--conv-layout', dict(type=str, default='NCHW')),
                     ('--batchnorm-layout', dict(type=str, default='NCHW')),
                     ('--pooling-layout', dict(type=str, default='NCHW')),
                     ('--num-examples', dict(type=int, default=1281167)),
                     ('--data-val-resize', dict(type=int, default=256))):
        dali.add_argument(flag, help=argparse.SUPPRESS, **kw)


def _extra_flags(p, d):
    g = p.add_argument_group('rexnet_gluon additions')
    g.add_argument('--gpus', type=str, default=None, help='GPU ids, e.g. 0,1,2,3 (instead of --num-gpus)')
    g.add_argument('--cpus', type=int, default=0, help='N CPU contexts cpu(0..N-1): multi-device training on CPU')
    g.add_argument('--kvstore', '--kv-store', dest='kvstore', default='device', choices=KVSTORES,
                   help='gradient aggregation: device/local (one machine), dist_* (ps-lite), horovod')
    g.add_argument('--amp', action='store_true', help='mixed precision with mx.contrib.amp: float16 on GPU, '
                   'bfloat16 on CPU')
    g.add_argument('--optimizer', default='nag', choices=('nag', 'sgd'), help='momentum SGD, Nesterov (GluonCV) '
                   'or plain')
    g.add_argument('--recipe', default=None, choices=sorted(RECIPES),
                   help='rexnet: NAG momentum 0.9, lr 0.5 x global batch / 512, wd 1e-5, cosine, 5 warmup epochs, '
                   '400 epochs, label smoothing 0.1, dropout 0.2, RandAugment rand-m9-mstd0.5, random erasing 0.2 '
                   'pixel, --no-wd. Flags given explicitly win.')
    g.add_argument('--randaugment', type=str, default=None, help="timm RandAugment config, e.g. 'rand-m9-mstd0.5' "
                   "('none': off); replaces colour jitter and PCA lighting")
    g.add_argument('--reprob', type=float, default=0.0, help='random erasing probability')
    g.add_argument('--remode', default='pixel', choices=('pixel', 'rand', 'const'), help='random erasing fill')
    g.add_argument('--recount', type=int, default=1, help='random erasing: max rectangles per image')
    g.add_argument('--dropout', type=float, default=None, help='dropout before the classifier (ReXNet default 0.2)')
    g.add_argument('--min-random-area', type=float, default=0.08, help='RandomResizedCrop minimum area fraction')
    g.add_argument('--color-jitter', type=float, default=0.4, help='brightness/contrast/saturation jitter')
    g.add_argument('--pca-noise', type=float, default=0.1, help='PCA lighting noise')
    g.add_argument('--classes', type=int, default=None,
                   help='classifier outputs (default: the number of class folders; 1000 with --use-rec)')
    g.add_argument('--model-kwargs', type=str, default=None,
                   help='JSON dict of extra model arguments, e.g. \'{"width_mult": 0.5, "depth_mult": 0.5}\'')
    g.add_argument('--teacher-params', type=str, default=None,
                   help="the teacher's weights: a .params (or .pth/.safetensors for ReXNet) file; 'random' for an "
                   "untrained teacher (smoke tests); default: its published pretrained weights (GluonCV)")
    g.add_argument('--teacher-kwargs', type=str, default=None, help='JSON dict of extra teacher model arguments')
    g.add_argument('--gn-groups', type=int, default=None, help='GroupNorm group count for --use-gn')
    g.add_argument('--syncbn', action='store_true', help='SyncBatchNorm across the GPUs of a worker (GPU only)')
    g.add_argument('--seed', type=int, default=None, help='seed of everything random (default: drawn and logged; '
                   '--resume reuses the checkpoint\'s)')
    g.add_argument('--resume', action='store_true', help='continue from the latest checkpoint in --save-dir '
                   '(start from scratch if there is none)')
    g.add_argument('--metrics-file', type=str, default=None,
                   help='per-epoch metrics written as PATH.csv and PATH.json (default: {save-dir}/metrics)')
    g.add_argument('--plot', nargs='?', const='', default=None, metavar='PNG',
                   help='write a PNG of the training curves at the end (also on interruption); default path '
                   '{save-dir}/training_curves.png')
    g.add_argument('--max-batches-per-epoch', type=int, default=None, help='cut epochs short (smoke tests)')
    g.add_argument('--max-val-batches', type=int, default=None, help='validate on the first N batches only')
    g.add_argument('--val-interval', type=int, default=1, help='validate every N epochs and at the end (0: never)')
    g.add_argument('--no-progress', action='store_true', help='no tqdm progress bar')
    # test hooks: a NaN loss at this update; a KeyboardInterrupt once this epoch is saved (as Ctrl-C would)
    g.add_argument('--inject-nan-at-step', type=int, default=None, help=argparse.SUPPRESS)
    g.add_argument('--interrupt-after-epoch', type=int, default=None, help=argparse.SUPPRESS)


def build_parser(kind='train'):
    """The argument parser; ``kind='finetune'`` adds the fine-tuning flags and changes some defaults."""
    if kind == 'finetune':
        d = dict(lr=0.01, num_epochs=10, lr_mode='cosine', wd=1e-4, save_dir='finetune-params', data_dir='.',
                 logging_file='finetune.log')
        p = argparse.ArgumentParser(description='Fine-tune a pretrained ReXNet on an ImageFolder data set '
                                    '(DATA-DIR/train/<class>/*, DATA-DIR/val/<class>/*): new classifier head, '
                                    'lower learning rate for the pretrained body.')
        f = p.add_argument_group('fine-tuning')
        f.add_argument('--pretrained', type=str, default='true',
                       help="'true' (published weights), an 8-hex cached tag, a .params/.pth/.safetensors file, or "
                       "'none' (from scratch)")
        f.add_argument('--body-lr-mult', type=float, default=0.1, help='lr multiplier of the pretrained body '
                       '(the new head uses 1)')
    else:
        d = {}
        p = argparse.ArgumentParser(description='Train an image classification model on ImageNet (GluonCV '
                                    'train_imagenet.py, for ReXNet).')
    _gluoncv_flags(p, d)
    _extra_flags(p, d)
    return p


def _explicit_dests(parser, argv):
    """The option dests given on the command line (parse again with every default suppressed)."""
    saved = [(a, a.default, a.required) for a in parser._actions]
    try:
        for a in parser._actions:
            a.default = argparse.SUPPRESS
            a.required = False
        ns, _ = parser.parse_known_args(argv)
    finally:
        for a, default, required in saved:
            a.default, a.required = default, required
    return set(vars(ns))


def _json_arg(text, flag):
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise TrainingError('%s is not valid JSON: %s' % (flag, err))
    if not isinstance(value, dict):
        raise TrainingError('%s must be a JSON object like {"width_mult": 0.5}, got %r' % (flag, text))
    return value


def _floats(text, flag, n=3):
    try:
        values = tuple(float(v) for v in str(text).split(','))
    except ValueError:
        values = ()
    if len(values) != n:
        raise TrainingError('%s must be %d comma-separated numbers, got %r' % (flag, n, text))
    return values


def parse_args(argv=None, kind='train'):
    """Parse and resolve: the recipe (explicit flags win), data paths, JSON arguments. Returns the namespace."""
    parser = build_parser(kind)
    argv = sys.argv[1:] if argv is None else list(argv)
    opt = parser.parse_args(argv)
    opt.explicit = sorted(_explicit_dests(parser, argv))
    opt.kind = kind
    resolve_args(opt)
    return opt


def resolve_args(opt):
    explicit = set(opt.explicit)
    opt.lr_scale = None
    if opt.recipe:
        for key, value in RECIPES[opt.recipe].items():
            if key in explicit:
                continue
            if key == 'lr':
                opt.lr_scale = value[1:]        # resolved once the global batch is known
            else:
                setattr(opt, key, value)
    if opt.randaugment and opt.randaugment.lower() in ('none', 'off', ''):
        opt.randaugment = None
    data_dir = os.path.expanduser(opt.data_dir)
    for name, default in (('rec_train', 'train.rec'), ('rec_train_idx', 'train.idx'), ('rec_val', 'val.rec'),
                          ('rec_val_idx', 'val.idx')):
        value = getattr(opt, name)
        setattr(opt, name, os.path.expanduser(value) if value else os.path.join(data_dir, 'rec', default))
    opt.data_dir = data_dir
    opt.model_kwargs_dict = _json_arg(opt.model_kwargs, '--model-kwargs')
    opt.teacher_kwargs_dict = _json_arg(opt.teacher_kwargs, '--teacher-kwargs')
    opt.mean = _floats(opt.rgb_mean, '--rgb-mean')
    opt.std = _floats(opt.rgb_std, '--rgb-std')
    if opt.lr_decay_period > 0:
        opt.lr_decay_epochs = list(range(opt.lr_decay_period, opt.num_epochs, opt.lr_decay_period))
    else:
        try:
            opt.lr_decay_epochs = [int(e) for e in opt.lr_decay_epoch.split(',') if e.strip()]
        except ValueError:
            raise TrainingError('--lr-decay-epoch must be comma-separated integers, got %r' % opt.lr_decay_epoch)
    for flag, value, low in (('--batch-size', opt.batch_size, 1), ('--num-epochs', opt.num_epochs, 1),
                             ('--log-interval', opt.log_interval, 1), ('--input-size', opt.input_size, 8),
                             ('--val-interval', opt.val_interval, 0), ('--save-frequency', opt.save_frequency, 0),
                             ('--warmup-epochs', opt.warmup_epochs, 0), ('--cpus', opt.cpus, 0)):
        if value < low:
            raise TrainingError('%s must be >= %d, got %d' % (flag, low, value))
    if opt.warmup_epochs >= opt.num_epochs and opt.num_epochs > 0 and opt.warmup_epochs:
        raise TrainingError('--warmup-epochs %d leaves no epoch of the main schedule (--num-epochs %d)'
                            % (opt.warmup_epochs, opt.num_epochs))
    return opt


# --------------------------------------------------------------------------------------- contexts and kvstore
def make_contexts(opt):
    """--gpus / --num-gpus -> [gpu(i)], --cpus N -> [cpu(0..N-1)], else [cpu()]."""
    gpus = []
    if opt.gpus:
        try:
            gpus = [int(g) for g in str(opt.gpus).split(',') if g.strip()]
        except ValueError:
            raise TrainingError('--gpus must be comma-separated GPU ids like 0,1,2,3, got %r' % opt.gpus)
        if opt.num_gpus and opt.num_gpus != len(gpus):
            raise TrainingError('--gpus %s and --num-gpus %d disagree; give one of them' % (opt.gpus, opt.num_gpus))
    elif opt.num_gpus > 0:
        gpus = list(range(opt.num_gpus))
    if gpus and opt.cpus:
        raise TrainingError('--cpus cannot be combined with GPUs (--gpus/--num-gpus)')
    if gpus:
        try:
            available = mx.context.num_gpus()
        except mx.base.MXNetError:
            available = 0
        if max(gpus) >= available:
            raise TrainingError('asked for GPU(s) %s but MXNet sees %d GPU(s) (a CPU-only MXNet build, no CUDA '
                                'device, or a GPU build without kernels for this GPU). Use --cpus N for a '
                                'multi-device run on the CPU.' % (gpus, available))
        return [mx.gpu(i) for i in gpus]
    if opt.cpus:
        return [mx.cpu(i) for i in range(opt.cpus)]
    return [mx.cpu()]


class Runtime:
    """Where this process sits in a (possibly distributed) run and how gradients are combined.

    ``step_batch(per_worker_batch)`` is what to pass to ``trainer.step``: dist kvstores SUM the workers' gradients
    (and dist_async fixes rescale_grad at the first step), so the step divides by the global batch; Horovod's
    DistributedTrainer already averages over workers; one machine sums over its devices only.
    """

    def __init__(self, kind='local', kv='device', rank=0, num_workers=1, hvd=None):
        self.kind, self.kv, self.rank, self.num_workers, self.hvd = kind, kv, int(rank), int(num_workers), hvd

    @property
    def is_root(self):
        return self.rank == 0

    def step_batch(self, per_worker_batch):
        return per_worker_batch * (self.num_workers if self.kind == 'dist' else 1)

    @property
    def kv_type(self):
        return self.kv if isinstance(self.kv, str) else getattr(self.kv, 'type', str(self.kv))

    def trainer_kwargs(self):
        """gluon.Trainer arguments. Dist kvstores keep MXNet's default, the update on the servers: with
        update_on_kvstore=False, dist_sync in MXNet 1.9.1 intermittently returns wrong (if worker-identical)
        weights (seen in 2 of 4 localhost runs of a 3-layer net; the default matched the single-process result
        every time). The price: optimizer states live on the servers and cannot be saved (see ``save_states``)."""
        return dict(kvstore=self.kv)

    @property
    def can_save_states(self):
        return self.kind != 'dist'

    def describe(self):
        return '%s (rank %d of %d worker%s)' % (self.kv_type, self.rank, self.num_workers,
                                               's' if self.num_workers > 1 else '')


def setup_runtime(opt, ctx):
    """Create the kvstore (or initialise Horovod); returns (Runtime, contexts)."""
    if opt.kvstore == 'horovod':
        try:
            import horovod.mxnet as hvd
        except ImportError as err:
            raise TrainingError(HOROVOD_HELP % err)
        if len(ctx) > 1:
            raise TrainingError('--kvstore horovod runs one device per process: launch N processes with horovodrun '
                                'and give --num-gpus 1 (each process takes the GPU of its local rank), not %d '
                                'devices' % len(ctx))
        hvd.init()
        if ctx[0].device_type == 'gpu':
            ctx = [mx.gpu(hvd.local_rank())]
        return Runtime('horovod', None, hvd.rank(), hvd.size(), hvd), ctx
    if opt.kvstore.startswith('dist'):
        if 'DMLC_ROLE' not in os.environ or 'DMLC_PS_ROOT_URI' not in os.environ:
            raise TrainingError(DIST_HELP % (opt.kvstore, opt.kvstore))
        kv = mx.kv.create(opt.kvstore)
        return Runtime('dist', kv, kv.rank, kv.num_workers), ctx
    return Runtime('local', opt.kvstore, 0, 1), ctx


# ------------------------------------------------------------------------------------------------ LR schedule
def make_lr_scheduler(mode, base_lr, iters_per_epoch, num_epochs, warmup_epochs=0, warmup_lr=0.0, decay_epochs=(),
                      decay=0.1, power=2, final_lr=0.0):
    """GluonCV's per-iteration schedule (linear warmup, then step/poly/cosine/linear/constant), as one of MXNet's
    own scheduler classes, so that dist_* servers can unpickle the optimizer (they cannot import this package:
    their loop runs inside ``import mxnet``). It maps the 0-based iteration t to the lr; the optimizer must be
    created with ``begin_num_update=-1`` so its first update is t = 0 (MXNet numbers updates from 1).

    Fixed against GluonCV: the warmup starts at ``warmup_lr`` (GluonCV always starts at 0), and the first update
    uses it. Warmup: ``warmup_lr + (lr - warmup_lr) * t / W``. After it, with T = t - W and N = the last
    iteration: cosine ``(1 + cos(pi T / N)) / 2``, poly ``(1 - T / N) ** 2``, linear ``1 - T / N`` (towards
    ``final_lr``), step ``decay ** #(decay epochs reached)`` with the decay epochs counted from the warmup's end.
    """
    if mode not in LR_MODES:
        raise TrainingError('--lr-mode must be one of %s, got %r' % (', '.join(LR_MODES), mode))
    if warmup_lr > base_lr:
        raise TrainingError('--warmup-lr %g is above --lr %g' % (warmup_lr, base_lr))
    sched = mx.lr_scheduler
    ipe = int(iters_per_epoch)
    warm = int(warmup_epochs * ipe)
    total = int(num_epochs * ipe)
    common = dict(warmup_steps=warm, warmup_begin_lr=float(warmup_lr))
    if mode in ('cosine', 'poly', 'linear'):
        last = max(total - 1, warm + 1)       # the lr reaches final_lr at the last iteration
        if mode == 'cosine':
            s = sched.CosineScheduler(last, base_lr=float(base_lr), final_lr=float(final_lr), **common)
        else:
            s = sched.PolyScheduler(last, base_lr=float(base_lr), pwr=power if mode == 'poly' else 1,
                                    final_lr=float(final_lr), **common)
        s(last)   # a fresh scheduler asked past its end would return base_lr: start it at its final value
        return s
    if mode == 'step':
        # MultiFactorScheduler decays when t > step: decay epoch e (after the warmup) at t = W + e*ipe.
        points = sorted(warm + int(e * ipe) - 1 for e in decay_epochs if warm + int(e * ipe) - 1 < total)
        early = [p for p in points if p < 1]
        late = [p for p in points if p >= 1]
        if len(set(points)) != len(points):
            raise TrainingError('--lr-decay-epoch has repeated epochs: %s' % list(decay_epochs))
        base = float(base_lr)
        if early:
            if warm <= 1:
                base *= decay ** len(early)   # decays from t <= 1 (a warmup, if any, is t = 0 at warmup_lr)
            elif len(early) <= warm - 1 and (not late or late[0] > len(early)):
                late = list(range(1, len(early) + 1)) + late   # all passed at t = W; the warmup masks them before
            else:
                raise TrainingError('--lr-decay-epoch %s cannot be scheduled with --warmup-epochs %d'
                                    % (list(decay_epochs), warmup_epochs))
        if late:
            return sched.MultiFactorScheduler(late, factor=float(decay), base_lr=base, **common)
        return sched.FactorScheduler(step=1 << 40, factor=1.0, base_lr=base, **common)
    return sched.FactorScheduler(step=1 << 40, factor=1.0, base_lr=float(base_lr), **common)   # constant


class LRProbe:
    """The lr of iteration t, from a private copy of a scheduler (stateful ones must be asked in order)."""

    def __init__(self, scheduler):
        import copy
        self._s = copy.deepcopy(scheduler)

    def lr_at(self, t):
        return float(self._s(int(t)))


def make_schedule(opt, iters_per_epoch):
    return make_lr_scheduler(opt.lr_mode, opt.lr, iters_per_epoch, opt.num_epochs, opt.warmup_epochs, opt.warmup_lr,
                             [e - opt.warmup_epochs for e in opt.lr_decay_epochs], opt.lr_decay)


# ----------------------------------------------------------------------------------------------------- models
def _is_rexnet(name):
    from ..zoo import MODELS
    return str(name).strip().lower() in MODELS


def create_model(name, classes, ctx, pretrained=False, kwargs=None):
    """A network by zoo name: rexnet_gluon's names first, then GluonCV's zoo. ``kwargs['width_mult']`` builds a
    ReXNet of another width under a zoo name (no published weights then; a local .params still loads)."""
    kwargs = dict(kwargs or {})
    key = str(name).strip().lower()
    try:
        if _is_rexnet(key):
            from .. import zoo
            from ..model import ReXNetV1, ReXNetV1Lite
            width = kwargs.pop('width_mult', kwargs.pop('multiplier', None))
            if width is None:
                return zoo.get_model(key, pretrained=pretrained, ctx=ctx, classes=classes, **kwargs)
            cls = ReXNetV1Lite if key.startswith('rexnet_lite') else ReXNetV1
            if key.startswith('rexnetr') and 'ch_div' not in kwargs:
                kwargs['ch_div'] = 16 if key.startswith('rexnetr_3') else 8
            net = cls(float(width), classes=classes, **kwargs)
            if pretrained:
                if not (isinstance(pretrained, str) and pretrained.endswith('.params')):
                    raise TrainingError('%s with width_mult=%s has no published weights; pass a .params file of '
                                        'this network' % (key, width))
                load_params_file(net, pretrained, ctx, skip_head=False)
            return net
        from ..gluoncv.compat import import_gluoncv
        import_gluoncv()
        from gluoncv.model_zoo import get_model as gcv_get_model, get_model_list as gcv_list
        if key not in gcv_list():
            from ..zoo import get_model_list
            raise TrainingError('unknown --model %r. rexnet_gluon has: %s; GluonCV zoo names (e.g. resnet18_v1b, '
                                'mobilenetv2_1.0) work too.' % (name, ', '.join(get_model_list())))
        if isinstance(pretrained, str) and os.path.isfile(pretrained):
            net = gcv_get_model(key, classes=classes, **kwargs)
            load_params_file(net, pretrained, ctx, skip_head=False)
            return net
        return gcv_get_model(key, pretrained=pretrained, ctx=ctx, classes=classes, **kwargs)
    except TrainingError:
        raise
    except (TypeError, ValueError, OSError, RuntimeError, mx.base.MXNetError) as err:
        raise TrainingError('cannot build model %r (classes=%s, arguments %s): %s'
                            % (name, classes, kwargs, err)) from err


def load_params_file(net, path, ctx, skip_head=False):
    """Load a Gluon .params into net by structural name; ``skip_head`` leaves ``output.*`` that do not fit."""
    if not os.path.isfile(path):
        raise TrainingError('weights file %s does not exist' % path)
    arrays = mx.nd.load(path)
    arrays = {k.split(':', 1)[-1]: v for k, v in arrays.items()}
    params = net._collect_params_with_prefix()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        net.initialize(mx.init.Xavier(), ctx=ctx)
    problems = []
    for k, p in params.items():
        head = k.startswith('output.')
        if k not in arrays:
            if not (skip_head and head):
                problems.append('%s missing' % k)
            continue
        if tuple(arrays[k].shape) != tuple(p.shape):
            if not (skip_head and head):
                problems.append('%s: file %s, network %s' % (k, arrays[k].shape, p.shape))
            continue
        p.set_data(arrays[k].astype(p.dtype))
    if problems:
        raise TrainingError('%s does not fit %s: %s' % (path, type(net).__name__, '; '.join(problems[:6])))


def _gn_groups(name, base_kwargs, explicit):
    """The GroupNorm group count for --use-gn: explicit, else the largest of 32..1 that divides every layer."""
    from ..gluoncv.compat import import_gluoncv
    gn = import_gluoncv().nn.GroupNorm
    if explicit or not _is_rexnet(name):
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
    name = opt.model.strip().lower()
    kwargs = {}
    if name.startswith('vgg'):
        kwargs['batch_norm'] = opt.batch_norm
    elif name.startswith('resnext'):
        kwargs['use_se'] = opt.use_se
    if opt.last_gamma:
        kwargs['last_gamma'] = True
    rexnet = _is_rexnet(name)
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


def _params_finite(net, ctx):
    for p in net.collect_params().values():
        if p._data is None and p._deferred_init:
            continue
        arr = p.data(ctx).asnumpy()
        if not np.isfinite(arr).all():
            return p.name
    return None


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate(net, loader, ctx, dtype='float32', max_batches=None, on_batch=None):
    """Top-1/top-5 accuracy over all validation samples, the batches split over all devices."""
    c1 = c5 = n = 0
    for i, (data, label) in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        devices = ctx[:max(1, min(len(ctx), data.shape[0]))]
        datas = gluon.utils.split_and_load(data, devices, even_split=False)
        outs = [net(x.astype(dtype, copy=False)) for x in datas]
        out = np.concatenate([o.astype('float32').asnumpy() for o in outs])
        lab = label.asnumpy().reshape(-1).astype(np.int64)
        k = min(5, out.shape[1])
        top = np.argsort(-out, axis=1, kind='stable')[:, :k]
        c1 += int((top[:, 0] == lab).sum())
        c5 += int((top == lab[:, None]).any(axis=1).sum())
        n += len(lab)
        if on_batch:
            on_batch(i, c1 / n, c5 / n, n)
    if n == 0:
        raise TrainingError('the validation data is empty')
    return dict(top1=c1 / n, top5=c5 / n, err_top1=1 - c1 / n, err_top5=1 - c5 / n, samples=n)


# ---------------------------------------------------------------------------------------- checkpoints and logs
def _atomic_write(path, write):
    """write(tmp_path) then fsync and rename over path: a reader never sees a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, '.%s.tmp%d' % (os.path.basename(path), os.getpid()))
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_text(text):
    def write(tmp):
        with open(tmp, 'w') as f:
            f.write(text)
    return write


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, type):
        return obj.__module__ + '.' + obj.__name__
    return str(obj)


def checkpoint_stem(save_dir, prefix, model, epoch, best_err=None):
    if best_err is None:
        return os.path.join(save_dir, '%s-%s-%d' % (prefix, model, epoch))
    return os.path.join(save_dir, '%.4f-%s-%s-%d-best' % (best_err, prefix, model, epoch))


def save_checkpoint(net, trainer, stem, meta, save_states=True):
    """``stem.params``, ``stem.states``, then ``stem.json`` (which marks the checkpoint complete), each atomic."""
    _atomic_write(stem + '.params', net.save_parameters)
    if save_states:
        _atomic_write(stem + '.states', trainer.save_states)
    meta = dict(meta, params=os.path.basename(stem + '.params'),
                states=os.path.basename(stem + '.states') if save_states else None)
    _atomic_write(stem + '.json', _write_text(json.dumps(meta, indent=1, default=_json_default)))
    return stem + '.params'


def find_latest_checkpoint(save_dir, prefix=None, model=None):
    """The complete checkpoint (json + files present) with the highest epoch in save_dir, as its metadata."""
    best = None
    if not save_dir or not os.path.isdir(save_dir):
        return None
    for fname in os.listdir(save_dir):
        if not fname.endswith('.json') or fname.startswith('.'):
            continue
        try:
            with open(os.path.join(save_dir, fname)) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or meta.get('format') != CHECKPOINT_FORMAT:
            continue
        if (prefix and meta.get('prefix') != prefix) or (model and meta.get('model') != model):
            continue
        paths = [os.path.join(save_dir, meta['params'])] + \
            ([os.path.join(save_dir, meta['states'])] if meta.get('states') else [])
        if not all(os.path.isfile(p) for p in paths):
            continue
        meta['params_path'] = paths[0]
        meta['states_path'] = paths[1] if len(paths) > 1 else None
        key = (meta['epoch'], meta.get('kind') == 'periodic')
        if best is None or key > best[0]:
            best = (key, meta)
    return best[1] if best else None


METRIC_FIELDS = ('epoch', 'lr', 'train_loss', 'train_acc', 'val_top1', 'val_top5', 'val_err_top1', 'val_err_top5',
                 'samples_per_sec', 'epoch_time', 'batches', 'num_update')


class MetricsLog:
    """Per-epoch metrics, rewritten atomically as CSV and JSON after every epoch; PNG curves on demand."""

    def __init__(self, base, plot_path=None, history=None, info=None):
        self.base = base
        self.plot_path = plot_path
        self.rows = list(history or [])
        self.info = info or {}

    @property
    def csv_path(self):
        return self.base + '.csv' if self.base else None

    @property
    def json_path(self):
        return self.base + '.json' if self.base else None

    def add(self, row):
        self.rows.append(row)
        self.write()

    def write(self):
        if not self.base:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction='ignore', lineterminator='\n')
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ('' if row.get(k) is None else row.get(k)) for k in METRIC_FIELDS})
        _atomic_write(self.csv_path, _write_text(buf.getvalue()))
        _atomic_write(self.json_path, _write_text(json.dumps(dict(self.info, epochs=self.rows), indent=1,
                                                             default=_json_default)))

    def plot(self):
        """Loss, train accuracy, val top-1/top-5 and lr against the epoch, as a PNG (written atomically)."""
        if not self.plot_path or not self.rows:
            return None
        from matplotlib.figure import Figure   # no pyplot: no global backend state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        fig = Figure(figsize=(10, 7))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2)
        ep = [r['epoch'] for r in self.rows]

        def series(key):
            pts = [(r['epoch'], r[key]) for r in self.rows if r.get(key) is not None]
            return [p[0] for p in pts], [p[1] for p in pts]

        axes[0, 0].plot(*series('train_loss'), 'o-')
        axes[0, 0].set_title('training loss')
        axes[0, 1].plot(*series('train_acc'), 'o-')
        axes[0, 1].set_title('training accuracy')
        axes[1, 0].plot(*series('val_top1'), 'o-', label='top-1')
        axes[1, 0].plot(*series('val_top5'), 's--', label='top-5')
        axes[1, 0].set_title('validation accuracy')
        axes[1, 0].legend()
        axes[1, 1].plot(ep, [r['lr'] for r in self.rows], 'o-')
        axes[1, 1].set_title('learning rate (end of epoch)')
        for ax in axes.flat:
            ax.set_xlabel('epoch')
            ax.grid(True, alpha=0.3)
        fig.suptitle(self.info.get('title', 'training curves'))
        fig.tight_layout()
        _atomic_write(self.plot_path, lambda tmp: fig.savefig(tmp, format='png', dpi=80))
        return self.plot_path


class _TqdmHandler(logging.Handler):
    """Log lines to stderr through tqdm.write, so they do not break the progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:   # pragma: no cover - logging must never raise
            self.handleError(record)


def _setup_logger(logging_file, rank, name='rexnet_gluon.train'):
    logger = logging.getLogger(name)
    _close_logger(logger)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter('%(message)s' if rank == 0 else '[rank %d] %%(message)s' % rank)
    stream = _TqdmHandler()
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if rank == 0 and logging_file:
        folder = os.path.dirname(os.path.abspath(logging_file))
        os.makedirs(folder, exist_ok=True)
        fh = logging.FileHandler(logging_file)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


def _close_logger(logger):
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed & 0xffffffff)
    mx.random.seed(seed)


# ----------------------------------------------------------------------------------------------------- losses
def _smooth(label, classes, eta=0.1):
    return label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)


def _mixup_target(label, classes, lam, eta=0.0):
    y1 = label.one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)
    y2 = label[::-1].one_hot(classes, on_value=1 - eta + eta / classes, off_value=eta / classes)
    return lam * y1 + (1 - lam) * y2


# ------------------------------------------------------------------------------------------------- the trainer
class _Run:
    """One training run: set-up from the options, then :meth:`fit`."""

    def __init__(self, opt, build_net=None, prefix='imagenet'):
        self.opt, self.build_net, self.prefix = opt, build_net, prefix
        self.logger = logging.getLogger('rexnet_gluon.train')
        self.logger_ready = False
        self.metrics = None
        self.last_checkpoint = None
        self.train_data = self.val_data = None

    # -- set-up -------------------------------------------------------------------------------------------
    def check_config(self):
        opt = self.opt
        if opt.data_backend != 'mxnet':
            raise TrainingError('--data-backend %s: NVIDIA DALI is not supported by this script; use the default '
                                '--data-backend mxnet (with --use-rec for the fast C++ RecordIO reader)'
                                % opt.data_backend)
        if opt.dtype not in ('float32', 'float16'):
            raise TrainingError('--dtype %s is not supported: use float32, float16 (GPU), or --amp (float16 on '
                                'GPU, bfloat16 on CPU)' % opt.dtype)
        if opt.use_gn and opt.mode == 'hybrid':
            raise TrainingError("--use-gn cannot be hybridized: gluoncv.nn.GroupNorm reads x.shape in its forward, "
                                "which a symbol does not have. Drop --mode hybrid (imperative) or --use-gn.")
        if opt.amp and opt.dtype != 'float32':
            raise TrainingError('--amp and --dtype %s exclude each other: --amp keeps float32 weights and casts '
                                'per operator; --dtype float16 casts the whole network' % opt.dtype)

    def setup(self):
        opt = self.opt
        self.check_config()
        ctx = make_contexts(opt)
        if opt.syncbn and ctx[0].device_type == 'cpu':
            raise TrainingError('--syncbn needs GPUs: MXNet 1.9.1\'s SyncBatchNorm waits for all devices at a '
                                'barrier and hangs with CPU contexts (--cpus)')
        if opt.dtype == 'float16' and ctx[0].device_type == 'cpu':
            raise TrainingError('--dtype float16 needs a GPU: MXNet has no float16 GEMM/convolution on the CPU '
                                '("FP16 gemm on cpu not implemented"). On the CPU use float32, or --amp for '
                                'bfloat16 mixed precision.')
        self.runtime, self.ctx = setup_runtime(opt, ctx)
        rt = self.runtime
        self.logger = _setup_logger(opt.logging_file, rt.rank)
        self.logger_ready = True
        log = self.logger
        log.info(_namespace_repr(opt))

        # --resume: the latest complete checkpoint decides the start epoch, the seed and the history.
        self.history, self.best_err, self.start_epoch = [], 1.0, opt.resume_epoch
        self.resumed_updates = None
        ckpt = None
        if opt.resume:
            if not self.saving_enabled:
                raise TrainingError('--resume needs checkpoints: give --save-dir and a --save-frequency > 0')
            ckpt = find_latest_checkpoint(opt.save_dir, self.prefix, opt.model)
            if ckpt is None:
                log.info('--resume: no checkpoint of %s in %s, starting from scratch', opt.model, opt.save_dir)
            else:
                opt.resume_params, opt.resume_states = ckpt['params_path'], ckpt['states_path'] or ''
                self.start_epoch = ckpt['epoch'] + 1
                log.info('--resume: continuing from %s (epoch %d done), next epoch %d',
                         ckpt['params_path'], ckpt['epoch'], self.start_epoch)
        elif opt.resume_params:
            sidecar = os.path.splitext(opt.resume_params)[0] + '.json'
            if os.path.isfile(sidecar):
                with open(sidecar) as f:
                    ckpt = json.load(f)
        if ckpt:
            self.history = [r for r in ckpt.get('history', []) if r['epoch'] < self.start_epoch]
            self.best_err = ckpt.get('best_val_err_top1', 1.0)
            self.resumed_updates = ckpt.get('num_update')
            if opt.seed is None:
                opt.seed = ckpt.get('seed')
            elif ckpt.get('seed') is not None and ckpt['seed'] != opt.seed:
                log.warning('--seed %d differs from the checkpoint\'s seed %d: the continued run will not match '
                            'an uninterrupted one', opt.seed, ckpt['seed'])
        if opt.seed is None:
            opt.seed = int.from_bytes(os.urandom(4), 'little') & 0x7fffffff
        seed_everything(opt.seed)

        if opt.amp:
            from mxnet.contrib import amp
            self.amp_dtype = 'float16' if self.ctx[0].device_type == 'gpu' else 'bfloat16'
            amp.init(target_dtype=self.amp_dtype)
            self.amp = amp
        else:
            self.amp = self.amp_dtype = None

        self.setup_data()
        self.setup_model()
        self.setup_trainer()
        self.setup_outputs()

    @property
    def saving_enabled(self):
        return bool(self.opt.save_dir) and self.opt.save_frequency > 0

    def setup_data(self):
        opt, rt, log = self.opt, self.runtime, self.logger
        self.per_worker_batch = opt.batch_size * len(self.ctx)
        self.global_batch = self.per_worker_batch * rt.num_workers
        self.aug = D.AugmentConfig(opt.input_size, opt.crop_ratio, opt.mean, opt.std, opt.min_random_area,
                                   opt.color_jitter, opt.pca_noise, opt.randaugment, opt.reprob, opt.remode,
                                   opt.recount)
        validate = opt.val_interval > 0
        parts = dict(num_parts=rt.num_workers, part_index=rt.rank)
        try:
            if opt.use_rec:
                for path, flag in ((opt.rec_train, '--rec-train'), (opt.rec_val, '--rec-val')):
                    if (flag == '--rec-train' or validate) and not os.path.isfile(path):
                        raise TrainingError('%s %s does not exist (default: {data-dir}/rec/%s)'
                                            % (flag, path, os.path.basename(path)))
                counted, where = D.count_rec_samples(opt.rec_train, opt.rec_train_idx)
                classes = opt.classes or 1000
                if self.aug.needs_python_pipeline:
                    self.train_data = D.TrainLoader(D.RecordSource(opt.rec_train, opt.rec_train_idx), self.aug,
                                                    self.per_worker_batch, opt.seed, opt.num_workers, **parts)
                else:
                    self.train_data = D.RecordIterTrainLoader(opt.rec_train, opt.rec_train_idx, self.aug,
                                                              self.per_worker_batch, opt.seed, opt.num_workers,
                                                              num_samples=counted, **parts)
                if validate:
                    self.val_data = D.RecordIterValLoader(opt.rec_val, opt.rec_val_idx, self.aug,
                                                          self.per_worker_batch, opt.num_workers)
            else:
                train_dir, val_dir = os.path.join(opt.data_dir, 'train'), os.path.join(opt.data_dir, 'val')
                if not os.path.isdir(train_dir):
                    raise TrainingError('--data-dir %s has no train/ folder. Expected the ImageFolder layout '
                                        '{data-dir}/train/<class>/<image>.jpg and {data-dir}/val/<class>/..., or '
                                        'RecordIO files with --use-rec.' % opt.data_dir)
                if validate and not os.path.isdir(val_dir):
                    raise TrainingError('--data-dir %s has no val/ folder (or pass --val-interval 0 to train '
                                        'without validation)' % opt.data_dir)
                source = D.FolderSource(train_dir)
                counted, where = len(source), train_dir
                classes = opt.classes or source.num_classes
                if classes < source.num_classes:
                    raise TrainingError('--classes %d but %s has %d class folders'
                                        % (classes, train_dir, source.num_classes))
                self.train_data = D.TrainLoader(source, self.aug, self.per_worker_batch, opt.seed, opt.num_workers,
                                                **parts)
                if validate:
                    self.val_data = D.ValLoader(D.FolderSource(val_dir, source.synsets), self.aug,
                                                self.per_worker_batch, opt.num_workers)
        except D.DataError as err:
            raise TrainingError(str(err)) from err
        self.classes = classes
        self.counted_samples, self.counted_where = counted, where
        if opt.num_training_samples:
            if opt.num_training_samples != counted:
                log.warning('--num-training-samples %d overrides the %d samples counted in %s (LR schedule only)',
                            opt.num_training_samples, counted, where)
            self.num_samples = opt.num_training_samples
            iters = (self.num_samples // rt.num_workers) // self.per_worker_batch
        else:
            self.num_samples = counted
            iters = len(self.train_data)
        self.batches_per_epoch = len(self.train_data)
        if opt.max_batches_per_epoch:
            iters = min(iters, opt.max_batches_per_epoch)
            self.batches_per_epoch = min(self.batches_per_epoch, opt.max_batches_per_epoch)
        if iters < 1:
            raise TrainingError('%d training samples make no full batch of %d per worker'
                                % (self.num_samples, self.per_worker_batch))
        self.iters_per_epoch = iters

    def setup_model(self):
        opt, ctx, log = self.opt, self.ctx, self.logger
        kwargs, self.model_notes = student_kwargs(opt, ctx)
        if self.build_net is not None:
            net = self.build_net(opt, ctx, self.classes, kwargs)
        else:
            net = create_model(opt.model, self.classes, ctx, opt.use_pretrained, kwargs)
        if opt.dtype != 'float32':
            net.cast(opt.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')   # already-initialized (pretrained) parameters are kept
            net.initialize(mx.init.MSRAPrelu(), ctx=ctx)
        if opt.resume_params:
            if not os.path.isfile(opt.resume_params):
                raise TrainingError('--resume-params %s does not exist' % opt.resume_params)
            net.load_parameters(opt.resume_params, ctx=ctx, cast_dtype=True)
        self.no_wd_names = apply_no_wd(net) if opt.no_wd else []
        if opt.mode == 'hybrid':
            net.hybridize(static_alloc=True, static_shape=True)
        self.net = net

        self.teacher = None
        self.distillation = bool(opt.teacher) and opt.hard_weight < 1.0
        if opt.teacher and not self.distillation:
            log.warning('--teacher is ignored with --hard-weight %s (distillation needs < 1)', opt.hard_weight)
        if self.distillation:
            self.teacher = self.build_teacher()

        sparse = not (opt.label_smoothing or opt.mixup)
        if self.distillation:
            from ..gluoncv.compat import import_gluoncv
            gcv = import_gluoncv()
            self.loss_fn = gcv.loss.DistillationSoftmaxCrossEntropyLoss(temperature=opt.temperature,
                                                                       hard_weight=opt.hard_weight,
                                                                       sparse_label=sparse)
        else:
            self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)

    def build_teacher(self):
        opt, ctx = self.opt, self.ctx
        source = opt.teacher_params
        pretrained = False if (source or '').lower() == 'random' else (source or True)
        if isinstance(pretrained, str) and not os.path.isfile(pretrained):
            raise TrainingError('--teacher-params %s does not exist' % pretrained)
        try:
            teacher = create_model(opt.teacher, self.classes, ctx, pretrained, opt.teacher_kwargs_dict)
        except TrainingError as err:
            raise TrainingError('cannot build the teacher --teacher %s: %s\nGive its weights with --teacher-params '
                                'FILE (a .params of that network with %d classes), or --teacher-params random for '
                                'an untrained teacher (smoke tests only).' % (opt.teacher, err, self.classes))
        except Exception as err:   # e.g. a failed download of the published weights
            raise TrainingError('cannot build the teacher --teacher %s (%s: %s). Give its weights with '
                                '--teacher-params FILE, or --teacher-params random for an untrained teacher (smoke '
                                'tests only).' % (opt.teacher, type(err).__name__, err))
        if opt.dtype != 'float32':
            teacher.cast(opt.dtype)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            teacher.initialize(mx.init.MSRAPrelu(), ctx=ctx)
        if opt.mode == 'hybrid':
            teacher.hybridize(static_alloc=True, static_shape=True)
        return teacher

    def setup_trainer(self):
        opt, rt, log = self.opt, self.runtime, self.logger
        self.lr_note = ''
        if opt.lr_scale:
            base, ref = opt.lr_scale
            opt.lr = base * self.global_batch / ref
            self.lr_note = ' (recipe %s: %g x global batch %d / %d)' % (opt.recipe, base, self.global_batch, ref)
        self.schedule = make_schedule(opt, self.iters_per_epoch)
        self.lr_probe = LRProbe(self.schedule)
        # begin_num_update=-1: MXNet's first update is then number 0, the schedule's first iteration
        optimizer_params = {'wd': opt.wd, 'momentum': opt.momentum, 'lr_scheduler': self.schedule,
                            'begin_num_update': -1}
        if opt.dtype != 'float32':
            optimizer_params['multi_precision'] = True
        params = self.net.collect_params()
        if rt.kind == 'horovod':
            rt.hvd.broadcast_parameters(params, root_rank=0)
            trainer = rt.hvd.DistributedTrainer(params, opt.optimizer, optimizer_params)
        else:
            trainer = gluon.Trainer(params, opt.optimizer, optimizer_params, **rt.trainer_kwargs())
        self.save_states = rt.can_save_states
        if opt.resume_states and not rt.can_save_states:
            log.warning('--kvstore %s keeps the optimizer states on the servers: %s is not loaded (fresh momentum)',
                        rt.kv_type, opt.resume_states)
        elif opt.resume_states:
            if not os.path.isfile(opt.resume_states):
                raise TrainingError('--resume-states %s does not exist' % opt.resume_states)
            trainer.load_states(opt.resume_states)
            # the states carry the optimizer (momentum buffers, update count) with the schedule it was pickled
            # with; put this run's schedule back (the same one unless the flags changed)
            trainer._optimizer.lr_scheduler = self.schedule
        if self.start_epoch and not (opt.resume_states and rt.can_save_states):
            # no optimizer states: fresh momentum, but the LR schedule continues where the run stopped (GluonCV
            # restarts it at update 0). Set before the first step, which sends the optimizer to dist servers.
            updates = self.resumed_updates if self.resumed_updates is not None else \
                self.start_epoch * self.iters_per_epoch
            trainer._optimizer.begin_num_update = trainer._optimizer.num_update = updates - 1
            log.warning('starting at epoch %d without optimizer states: fresh momentum, LR schedule at update %d',
                        self.start_epoch, updates)
        if self.amp is not None:
            self.amp.init_trainer(trainer)
        self.trainer = trainer
        self.step_batch = rt.step_batch(self.per_worker_batch)
        self.num_update = self._trainer_updates()

    def _trainer_updates(self):
        """Updates done so far (the optimizer counts from begin_num_update = -1)."""
        return int(self.trainer._optimizer.num_update) + 1

    def setup_outputs(self):
        opt = self.opt
        root = self.runtime.is_root
        if self.saving_enabled and root:
            os.makedirs(opt.save_dir, exist_ok=True)
        base = opt.metrics_file
        if base is None and opt.save_dir and root:
            base = os.path.join(opt.save_dir, 'metrics')
        if base and (base.endswith('.csv') or base.endswith('.json')):
            base = os.path.splitext(base)[0]
        plot = opt.plot
        if plot == '':
            plot = os.path.join(opt.save_dir or '.', 'training_curves.png')
        for path in (base, plot):
            if path and root:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.hparams = self.resolved_hparams()
        info = dict(title='%s: %s' % (self.prefix, opt.model), model=opt.model, hyperparameters=self.hparams,
                    args=_args_dict(opt))
        self.metrics = MetricsLog(base if root else None, plot if root else None, self.history, info)
        log = self.logger
        log.info('Resolved hyper-parameters: %s', ', '.join('%s=%s' % kv for kv in self.hparams.items()))
        log.info('Data: %s, %d training samples (counted in %s)%s, %d per worker, %d batches/epoch, %d iterations/'
                 'epoch in the LR schedule; augmentation %s', self.train_data.kind, self.counted_samples,
                 self.counted_where, '' if not opt.num_training_samples else
                 ', --num-training-samples %d' % opt.num_training_samples,
                 self.counted_samples // self.runtime.num_workers,
                 self.batches_per_epoch, self.iters_per_epoch, self.aug.describe())

    def resolved_hparams(self):
        opt, rt = self.opt, self.runtime
        h = dict(model=opt.model, classes=self.classes, recipe=opt.recipe or 'none',
                 contexts='[%s]' % ','.join(str(c) for c in self.ctx), kvstore=rt.describe(),
                 batch='%d per device x %d devices x %d workers = %d global' % (
                     opt.batch_size, len(self.ctx), rt.num_workers, self.global_batch),
                 optimizer=opt.optimizer, lr='%g%s' % (opt.lr, self.lr_note), momentum=opt.momentum, wd=opt.wd,
                 no_wd=bool(opt.no_wd), lr_mode=opt.lr_mode, warmup_epochs=opt.warmup_epochs,
                 warmup_lr=opt.warmup_lr, num_epochs=opt.num_epochs, iters_per_epoch=self.iters_per_epoch,
                 label_smoothing=0.1 if opt.label_smoothing else 'off',
                 mixup=('alpha %g, off in the last %d epochs' % (opt.mixup_alpha, opt.mixup_off_epoch))
                 if opt.mixup else 'off',
                 distillation=('%s, T=%g, hard_weight=%g' % (opt.teacher, opt.temperature, opt.hard_weight))
                 if self.distillation else 'off',
                 dropout=opt.dropout if opt.dropout is not None else 'model default',
                 randaugment=opt.randaugment or 'off', reprob=opt.reprob, remode=opt.remode,
                 dtype=opt.dtype, amp=self.amp_dtype or 'off', mode=opt.mode or 'imperative', seed=opt.seed,
                 input_size=opt.input_size)
        if opt.lr_mode == 'step':
            h['lr_decay'] = opt.lr_decay
            h['lr_decay_epochs'] = ','.join(str(e) for e in opt.lr_decay_epochs)
        if self.model_notes:
            h['model_notes'] = '; '.join(self.model_notes)
        return h

    # -- the loop -----------------------------------------------------------------------------------------
    def fit(self):
        opt, log = self.opt, self.logger
        tic = time.time()
        if self.start_epoch >= opt.num_epochs:
            log.info('Nothing to do: epoch %d is past --num-epochs %d', self.start_epoch, opt.num_epochs)
            return
        for epoch in range(self.start_epoch, opt.num_epochs):
            row = self.train_epoch(epoch)
            last = epoch == opt.num_epochs - 1
            if opt.val_interval and ((epoch + 1) % opt.val_interval == 0 or last):
                res = evaluate(self.net, self.val_data, self.ctx, opt.dtype, opt.max_val_batches)
                row.update(val_top1=res['top1'], val_top5=res['top5'], val_err_top1=res['err_top1'],
                           val_err_top5=res['err_top5'])
                log.info('[Epoch %d] validation: err-top1=%f err-top5=%f', epoch, res['err_top1'], res['err_top5'])
            self.metrics.rows.append(row)
            self.save_epoch(epoch, row, last)
            self.metrics.write()
            if opt.interrupt_after_epoch == epoch:
                raise KeyboardInterrupt
        log.info('Training time for %d epochs: %f sec.', opt.num_epochs - self.start_epoch, time.time() - tic)
        log.info('Parameter fingerprint: %s (trained parameters; equal on every worker of a synchronous run)',
                 param_fingerprint(self.net))

    def train_epoch(self, epoch):
        opt, ctx, log = self.opt, self.ctx, self.logger
        mx.random.seed(D.derive_seed(opt.seed, epoch, 5))     # dropout etc.: a function of (seed, epoch)
        mix_rng = np.random.default_rng([opt.seed, epoch, 4])
        eta = 0.1 if opt.label_smoothing else 0.0
        loss_sum = correct = seen = 0.0
        tic = btic = time.time()
        bar = None
        if self.runtime.is_root and not opt.no_progress:
            from tqdm import tqdm
            bar = tqdm(total=self.batches_per_epoch, desc='Epoch %d/%d' % (epoch, opt.num_epochs), unit='batch',
                       file=sys.stderr, dynamic_ncols=True, mininterval=0.5, leave=True)
        nb = 0
        lr = self.lr_probe.lr_at(self.num_update)
        lr_start = lr
        try:
            for i, (data, label) in enumerate(self.train_data.epoch(epoch)):
                if i >= self.batches_per_epoch:
                    break
                lr = self.lr_probe.lr_at(self.num_update)
                data = data.astype('float32', copy=False)
                label = label.astype('float32', copy=False)
                hard = label
                if opt.mixup:
                    lam = float(mix_rng.beta(opt.mixup_alpha, opt.mixup_alpha))
                    if epoch >= opt.num_epochs - opt.mixup_off_epoch:
                        lam = 1.0
                    data = lam * data + (1 - lam) * data[::-1]
                    target = _mixup_target(label, self.classes, lam, eta)
                elif opt.label_smoothing:
                    target = _smooth(label, self.classes, eta)
                else:
                    target = label
                datas = gluon.utils.split_and_load(data, ctx, even_split=True)
                targets = gluon.utils.split_and_load(target, ctx, even_split=True)
                hards = gluon.utils.split_and_load(hard, ctx, even_split=True)
                soft = None
                if self.teacher is not None:
                    soft = [nd.softmax(self.teacher(x.astype(opt.dtype, copy=False)).astype('float32')
                                       / opt.temperature) for x in datas]
                with autograd.record():
                    outs = [self.net(x.astype(opt.dtype, copy=False)) for x in datas]
                    if soft is not None:
                        losses = [self.loss_fn(o.astype('float32', copy=False), y.astype('float32', copy=False), p)
                                  for o, y, p in zip(outs, targets, soft)]
                    else:
                        losses = [self.loss_fn(o, y.astype(opt.dtype, copy=False)) for o, y in zip(outs, targets)]
                    if opt.inject_nan_at_step is not None and self.num_update == opt.inject_nan_at_step:
                        losses = [l * float('nan') for l in losses]
                    if self.amp is not None:
                        with self.amp.scale_loss(losses, self.trainer) as scaled:
                            autograd.backward(scaled)
                if self.amp is None:
                    autograd.backward(losses)
                batch_loss = sum(float(l.sum().asscalar()) for l in losses)
                n = data.shape[0]
                if not math.isfinite(batch_loss):
                    raise NonFiniteError('the training loss became %s at epoch %d, batch %d (update %d, lr %g)'
                                         % (batch_loss, epoch, i, self.num_update, lr))
                self.trainer.step(self.step_batch)
                self.num_update += 1
                correct += sum(float((o.argmax(axis=1).astype('float32') == h).sum().asscalar())
                               for o, h in zip(outs, hards))
                loss_sum += batch_loss
                seen += n
                nb += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str('loss=%.4f acc=%.3f lr=%.4g %.0f img/s' % (
                        loss_sum / seen, correct / seen, lr, seen / max(1e-9, time.time() - tic)), refresh=False)
                if opt.log_interval and (i + 1) % opt.log_interval == 0:
                    log.info('Epoch[%d] Batch [%d]\tSpeed: %f samples/sec\taccuracy=%f\tlr=%f\tloss=%f',
                             epoch, i, n * opt.log_interval / max(1e-9, time.time() - btic), correct / seen, lr,
                             loss_sum / seen)
                    btic = time.time()
        finally:
            if bar is not None:
                bar.close()
        if seen == 0:
            raise TrainingError('epoch %d produced no training batch' % epoch)
        elapsed = time.time() - tic
        speed = seen * self.runtime.num_workers / elapsed
        log.info('[Epoch %d] training: accuracy=%f loss=%f', epoch, correct / seen, loss_sum / seen)
        log.info('[Epoch %d] speed: %d samples/sec\ttime cost: %f', epoch, speed, elapsed)
        return dict(epoch=epoch, lr=lr, lr_start=lr_start, train_loss=loss_sum / seen, train_acc=correct / seen,
                    val_top1=None, val_top5=None, val_err_top1=None, val_err_top5=None, samples_per_sec=speed,
                    epoch_time=elapsed, batches=nb, num_update=self.num_update)

    def save_epoch(self, epoch, row, last):
        opt = self.opt
        improved = row.get('val_err_top1') is not None and row['val_err_top1'] < self.best_err
        if improved:
            self.best_err = row['val_err_top1']
        periodic = (epoch + 1) % opt.save_frequency == 0 or last if opt.save_frequency else False
        if not (self.saving_enabled and self.runtime.is_root and (improved or periodic)):
            return
        bad = _params_finite(self.net, self.ctx[0])
        if bad:
            raise NonFiniteError('parameter %s holds NaN/inf after epoch %d' % (bad, epoch))
        meta = dict(format=CHECKPOINT_FORMAT, prefix=self.prefix, model=self.opt.model, epoch=epoch,
                    next_epoch=epoch + 1, num_update=self.num_update, seed=opt.seed, metrics=row,
                    history=self.metrics.rows, best_val_err_top1=self.best_err, classes=self.classes,
                    args=_args_dict(opt), time=time.strftime('%Y-%m-%dT%H:%M:%S'))
        if improved:
            stem = checkpoint_stem(opt.save_dir, self.prefix, opt.model, epoch, self.best_err)
            save_checkpoint(self.net, self.trainer, stem, dict(meta, kind='best'), self.save_states)
            self.last_checkpoint = stem + '.params'
        if periodic:
            stem = checkpoint_stem(opt.save_dir, self.prefix, opt.model, epoch)
            save_checkpoint(self.net, self.trainer, stem, dict(meta, kind='periodic'), self.save_states)
            self.last_checkpoint = stem + '.params'
        self.logger.info('[Epoch %d] checkpoint %s', epoch, self.last_checkpoint)

    def close(self):
        for loader in (self.train_data, self.val_data):
            inner = getattr(loader, 'loader', None)
            if inner is not None and getattr(inner, '_worker_pool', None) is not None:
                inner._worker_pool.terminate()
                inner._worker_pool = None


def _namespace_repr(opt):
    return 'Namespace(%s)' % ', '.join('%s=%r' % (k, v) for k, v in sorted(_args_dict(opt).items()))


def _args_dict(opt):
    return {k: v for k, v in vars(opt).items() if k not in ('model_kwargs_dict', 'teacher_kwargs_dict')}


def run(opt, build_net=None, prefix='imagenet'):
    """Set up and train; returns the process exit status (0 ok, 1 NaN/inf, 2 configuration, 130 interrupted)."""
    r = _Run(opt, build_net, prefix)
    status = 0

    def report(fmt, *args):
        # before the logger is set up (configuration errors found first), straight to stderr
        if r.logger_ready:
            r.logger.error(fmt, *args)
        else:
            print(fmt % args, file=sys.stderr)

    try:
        r.setup()
        r.fit()
    except NonFiniteError as err:
        keep = r.last_checkpoint or (find_latest_checkpoint(opt.save_dir, prefix, opt.model) or {}).get(
            'params_path') if r.saving_enabled else None
        report('error: %s. Training stopped; nothing was saved after the last good epoch. %s Lower --lr (or use '
               'warmup), then continue with --resume.', err,
               'The last good checkpoint is %s.' % keep if keep else 'There is no checkpoint yet.')
        status = err.exit_code
    except TrainingError as err:
        report('error: %s', err)
        status = err.exit_code
    except KeyboardInterrupt:
        report('interrupted; the last checkpoint is %s (continue with --resume)', r.last_checkpoint)
        status = 130
    finally:
        try:
            if r.metrics is not None:
                r.metrics.write()
                png = r.metrics.plot()
                if png:
                    r.logger.info('training curves: %s', png)
        finally:
            r.close()
            _close_logger(logging.getLogger('rexnet_gluon.train'))
    return status


def main(argv=None):
    """``scripts/train_imagenet.py``."""
    try:
        opt = parse_args(argv)
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    return run(opt)


# --------------------------------------------------------------------------------------------- fine-tuning
def finetune_main(argv=None):
    """``scripts/finetune.py``: a pretrained body, a new ``nn.Dense(classes)`` head (GluonCV's transfer-learning
    recipe), the body at ``--body-lr-mult`` times the head's learning rate; the rest is the training loop above."""
    try:
        opt = parse_args(argv, kind='finetune')
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    if opt.use_rec:
        print('error: scripts/finetune.py reads an ImageFolder (DATA-DIR/train, DATA-DIR/val); --use-rec is for '
              'scripts/train_imagenet.py', file=sys.stderr)
        return 2
    return run(opt, build_net=_finetune_net, prefix='finetune')


def _finetune_net(opt, ctx, classes, kwargs):
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
    logging.getLogger('rexnet_gluon.train').info(
        'Fine-tuning %s: body from %s with lr_mult %g, new head Dropout(%g) + Dense(%d) with lr_mult 1',
        opt.model, 'published weights' if pretrained is True else (pretrained or 'scratch (--pretrained none)'),
        opt.body_lr_mult, dropout, classes)
    return net


# ------------------------------------------------------------------------------------------ verify_pretrained
def build_verify_parser():
    p = argparse.ArgumentParser(description='Evaluate a (pretrained) model on ImageNet-style validation data: '
                                'top-1/top-5 error and throughput (GluonCV verify_pretrained.py).')
    p.add_argument('--data-dir', type=str, default='~/.mxnet/datasets/imagenet',
                   help='ImageFolder root with val/<class>/ (ignored with --rec-dir/--rec-val)')
    p.add_argument('--rec-dir', type=str, default='', help='folder with val.rec (+ val.idx)')
    p.add_argument('--rec-val', type=str, default='', help='validation .rec (instead of --rec-dir)')
    p.add_argument('--rec-val-idx', type=str, default='', help='its .idx')
    p.add_argument('--batch-size', type=int, default=32, help='per device')
    p.add_argument('--num-gpus', type=int, default=0)
    p.add_argument('--gpus', type=str, default=None)
    p.add_argument('--cpus', type=int, default=0)
    p.add_argument('-j', '--num-data-workers', dest='num_workers', default=4, type=int)
    p.add_argument('--model', type=str, required=True)
    p.add_argument('--params-file', type=str, default='', help='weights to evaluate (default: published weights)')
    p.add_argument('--input-size', type=int, default=224)
    p.add_argument('--crop-ratio', type=float, default=0.875)
    p.add_argument('--num-batches', type=int, default=100, help='batches timed by --benchmark')
    p.add_argument('--max-batches', type=int, default=None, help='evaluate on the first N batches only')
    p.add_argument('--benchmark', action='store_true', help='time synthetic data instead of evaluating')
    p.add_argument('--dtype', type=str, default='float32')
    p.add_argument('--use_se', action='store_true')
    p.add_argument('--classes', type=int, default=None, help='default: from the params file, else 1000')
    p.add_argument('--model-kwargs', type=str, default=None)
    p.add_argument('--rgb-mean', type=str, default='123.68,116.779,103.939')
    p.add_argument('--rgb-std', type=str, default='58.393,57.12,57.375')
    p.add_argument('--mode', type=str, default='hybrid', help='hybrid (default) or imperative')
    return p


def verify_main(argv=None):
    """``scripts/verify_pretrained.py``; prints running and final top-1/top-5 error, throughput, parameter count."""
    p = build_verify_parser()
    opt = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        return _verify(opt)
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2


def _verify(opt):
    ctx = make_contexts(opt)
    if opt.dtype not in ('float32', 'float16'):
        raise TrainingError('--dtype must be float32 or float16, got %s' % opt.dtype)
    if opt.dtype == 'float16' and ctx[0].device_type == 'cpu':
        raise TrainingError('--dtype float16 needs a GPU (no float16 GEMM on the CPU)')
    kwargs = _json_arg(opt.model_kwargs, '--model-kwargs')
    if opt.model.lower().startswith('resnext'):
        kwargs['use_se'] = opt.use_se
    if _is_rexnet(opt.model):
        kwargs.setdefault('input_size', opt.input_size)
    classes = opt.classes
    if opt.params_file:
        if not os.path.isfile(opt.params_file):
            raise TrainingError('--params-file %s does not exist' % opt.params_file)
        if opt.params_file.endswith('.params'):
            from ..zoo import checkpoint_classes
            try:
                classes = classes or checkpoint_classes(opt.params_file)
            except ValueError:   # no classifier weights: loading the file reports what is wrong
                pass
    classes = classes or 1000
    if opt.params_file and opt.params_file.endswith('.params'):
        net = create_model(opt.model, classes, ctx, False, kwargs)
        load_params_file(net, opt.params_file, ctx)
    else:
        try:
            net = create_model(opt.model, classes, ctx, opt.params_file or True, kwargs)
        except TrainingError:
            raise
        except Exception as err:
            raise TrainingError('cannot load the pretrained weights of %s (%s: %s); give --params-file FILE'
                                % (opt.model, type(err).__name__, err))
    if opt.dtype != 'float32':
        net.cast(opt.dtype)
    if opt.mode == 'hybrid':
        net.hybridize(static_alloc=True, static_shape=True)
    num_params = sum(int(np.prod(v.shape)) for v in net.collect_params().values())
    bs = opt.batch_size * len(ctx)
    if opt.benchmark:
        x = mx.nd.random.uniform(shape=(bs, 3, opt.input_size, opt.input_size))
        datas = gluon.utils.split_and_load(x, ctx)
        for _ in range(3):
            [net(d.astype(opt.dtype)).wait_to_read() for d in datas]
        tic = time.time()
        for _ in range(opt.num_batches):
            outs = [net(d.astype(opt.dtype)) for d in datas]
        for o in outs:
            o.wait_to_read()
        speed = bs * opt.num_batches / (time.time() - tic)
        print('%s: benchmark of %d batches of %d at %dx%d: %.1f images/sec' % (
            opt.model, opt.num_batches, bs, opt.input_size, opt.input_size, speed))
        print('Parameters: %d' % num_params)
        return 0
    cfg = D.AugmentConfig(opt.input_size, opt.crop_ratio, _floats(opt.rgb_mean, '--rgb-mean'),
                          _floats(opt.rgb_std, '--rgb-std'))
    rec = opt.rec_val or (os.path.join(os.path.expanduser(opt.rec_dir), 'val.rec') if opt.rec_dir else '')
    try:
        if rec:
            idx = opt.rec_val_idx or os.path.splitext(rec)[0] + '.idx'
            loader = D.RecordIterValLoader(rec, idx, cfg, bs, opt.num_workers)
        else:
            val_dir = os.path.join(os.path.expanduser(opt.data_dir), 'val')
            loader = D.ValLoader(D.FolderSource(val_dir), cfg, bs, opt.num_workers)
    except D.DataError as err:
        raise TrainingError(str(err))
    total = len(loader) if not opt.max_batches else min(len(loader), opt.max_batches)

    def on_batch(i, top1, top5, n):
        print('[%d/%d] err-top1=%f err-top5=%f' % (i + 1, total, 1 - top1, 1 - top5))

    tic = time.time()
    res = evaluate(net, loader, ctx, opt.dtype, opt.max_batches, on_batch)
    elapsed = time.time() - tic
    print('%s: err-top1=%f err-top5=%f on %d images (top-1 %.2f%%, top-5 %.2f%%)'
          % (opt.model, res['err_top1'], res['err_top5'], res['samples'], 100 * res['top1'], 100 * res['top5']))
    print('Throughput: %.1f images/sec (data loading included)' % (res['samples'] / elapsed))
    print('Parameters: %d' % num_params)
    return 0
