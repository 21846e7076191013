"""The command line: GluonCV's train_imagenet.py flags (same names, meanings and defaults) and ours, the recipes,
and their resolution into the namespace the rest of the training code reads."""
import argparse
import json
import os
import sys

from .errors import TrainingError
from .optimizer import NAME as NAG_TORCH

__all__ = ['KVSTORES', 'LR_MODES', 'RECIPES', 'build_parser', 'parse_args', 'resolve_args', 'resolve_names',
           'json_arg', 'floats', 'args_dict']

KVSTORES = ('device', 'local', 'dist_sync', 'dist_device_sync', 'dist_async', 'horovod')
LR_MODES = ('step', 'poly', 'cosine', 'linear', 'constant')

# The recipe behind the published ReXNet weights: the original README's timm command with timm's defaults of July
# 2020 (shared/docs/training-recipe.md). lr is 0.5 for a global batch of 512 and scales linearly with the global
# batch unless --lr is given. The lr changes once per epoch: 3 warm-up epochs from 1e-4, then cosine counted from
# epoch 0 down to 1e-5. 'rexnet' stops at epoch 400, the end of that cosine; 'rexnet-timm2020' also runs timm's 10
# cooldown epochs as that version did (a new cosine cycle scaled by 0.1: lr ~0.05 for epochs 400-409).
# Mixup and distillation stay off unless asked. The optimizer is timm's `--opt sgd`, torch.optim.SGD(nesterov=True),
# as `nag_torch` (MXNet's `nag` is not: lr-scaled momentum, and its wd term from the updated weight: optimizer.py).
_REXNET = dict(optimizer=NAG_TORCH, momentum=0.9, lr=('scale', 0.5, 512), wd=1e-5, lr_mode='cosine', warmup_epochs=3,
               warmup_lr=1e-4, min_lr=1e-5, lr_per_epoch=True, decay_from_start=True, num_epochs=400,
               label_smoothing=True, dropout=0.2, randaugment='rand-m9-mstd0.5', reprob=0.2, remode='pixel',
               no_wd=True, train_interpolation='random')
RECIPES = {
    'rexnet': _REXNET,
    'rexnet-timm2020': dict(_REXNET, num_epochs=410, lr_period=400, cycle_decay=0.1),
}


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
                   help='float32, float16 (GPU only; fp32 master weights via multi_precision), or float64 '
                        '(exact comparisons; not with --kvstore dist_*, which returns float32 weights)')
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
    g.add_argument('--model', type=str, required=True, help='rexnet_1.0x, ... (rexnet_gluon.get_model_list()), an '
                   'alias (rexnet, timm\'s rexnet_100, rexnetv1_1.0, ...: checkpoints use the zoo name), or a '
                   'GluonCV zoo name')
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
    g.add_argument('--optimizer', default='nag', choices=('nag', NAG_TORCH, 'sgd'),
                   help='nag: MXNet\'s Nesterov momentum SGD (GluonCV\'s; its momentum holds lr-scaled steps and '
                   'takes wd x the already updated weight); %s: PyTorch\'s SGD(nesterov=True, weight_decay), the '
                   'optimizer of the published weights (--recipe rexnet); sgd: plain momentum SGD' % NAG_TORCH)
    g.add_argument('--recipe', default=None, choices=sorted(RECIPES),
                   help='rexnet: the published weights\' timm recipe: PyTorch\'s Nesterov SGD (--optimizer %s) '
                   'momentum 0.9, lr 0.5 x global batch / 512, '
                   'wd 1e-5 (none on BN/bias), lr per epoch: 3 warm-up epochs from 1e-4, cosine from epoch 0 to 1e-5 '
                   'at epoch 400, label smoothing 0.1, dropout 0.2, RandAugment rand-m9-mstd0.5, random erasing 0.2 '
                   'pixel, random bilinear/bicubic crops. rexnet-timm2020: the same plus timm 2020\'s 10 cooldown '
                   'epochs (a new cosine cycle at 0.1x). Flags given explicitly win.' % NAG_TORCH)
    g.add_argument('--lr-per-epoch', action='store_true', help='change the lr once per epoch (timm), not every '
                   'iteration (GluonCV)')
    g.add_argument('--min-lr', type=float, default=0.0, help='where cosine/poly/linear decay ends (GluonCV: 0)')
    g.add_argument('--decay-from-start', action='store_true', help='with --lr-per-epoch: count the decay from '
                   'epoch 0, the warm-up replacing its first epochs (timm), not from the warm-up\'s end (GluonCV)')
    g.add_argument('--lr-period', type=int, default=0, help='with --lr-per-epoch: epochs of one decay cycle '
                   '(default: to the last epoch); later epochs start a new cycle scaled by --cycle-decay')
    g.add_argument('--cycle-decay', type=float, default=0.1, help='scale of each new cycle after --lr-period')
    g.add_argument('--train-interpolation', default='bilinear', choices=('bilinear', 'bicubic', 'random'),
                   help='resize of the training crop; random: bilinear or bicubic per image (timm)')
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
    g.add_argument('--kill-at-step', type=int, default=None, help=argparse.SUPPRESS)   # tests: SIGKILL itself


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
        f.add_argument('--body-lr-mult', type=float, default=None,
                       help='lr multiplier of everything but the new classifier (which uses 1); default 0.1 from '
                       'pretrained weights, 1 with --pretrained none')
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


def json_arg(text, flag):
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise TrainingError('%s is not valid JSON: %s' % (flag, err))
    if not isinstance(value, dict):
        raise TrainingError('%s must be a JSON object like {"width_mult": 0.5}, got %r' % (flag, text))
    return value


def floats(text, flag, n=3):
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


def resolve_names(opt):
    """--model / --teacher given as an alias (``rexnet``, timm's ``rexnet_100``, ``rexnetv1_1.0``, any case) become
    the canonical zoo name, so checkpoints, logs and --resume all use it. Sets ``opt.renamed``: the renames as
    'rexnet -> rexnet_1.0x' lines (the run logs them once)."""
    from .models import rexnet_name
    opt.renamed = []
    for flag in ('model', 'teacher'):
        typed = getattr(opt, flag, None)
        name = rexnet_name(typed) if typed else None
        if name and name != typed:
            setattr(opt, flag, name)
            opt.renamed.append('--%s %s -> %s' % (flag, typed, name))
    return opt


def resolve_args(opt):
    resolve_names(opt)
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
    opt.model_kwargs_dict = json_arg(opt.model_kwargs, '--model-kwargs')
    opt.teacher_kwargs_dict = json_arg(opt.teacher_kwargs, '--teacher-kwargs')
    opt.mean = floats(opt.rgb_mean, '--rgb-mean')
    opt.std = floats(opt.rgb_std, '--rgb-std')
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
                             ('--warmup-epochs', opt.warmup_epochs, 0), ('--cpus', opt.cpus, 0),
                             ('--lr-period', opt.lr_period, 0)):
        if value < low:
            raise TrainingError('%s must be >= %d, got %d' % (flag, low, value))
    if opt.warmup_epochs >= opt.num_epochs and opt.num_epochs > 0 and opt.warmup_epochs:
        raise TrainingError('--warmup-epochs %d leaves no epoch of the main schedule (--num-epochs %d)'
                            % (opt.warmup_epochs, opt.num_epochs))
    return opt


def args_dict(opt):
    """The options as a dict, without the parsed copies of the JSON flags and the name resolution's notes."""
    return {k: v for k, v in vars(opt).items() if k not in ('model_kwargs_dict', 'teacher_kwargs_dict', 'renamed')}
