"""What is trained and how: the network (and a distillation teacher), the loss, mixed precision, and the gluon
Trainer with its LR schedule (recipe lr scaling, resumed optimizer state)."""
import os
import warnings

import mxnet as mx
from mxnet import gluon

from .checkpoints import restore_device_stats
from .errors import TrainingError
from .models import apply_no_wd, create_model, student_kwargs
from .optimizer import NAME as NAG_TORCH   # registers nag_torch for gluon.Trainer / hvd.DistributedTrainer
from .schedule import LRProbe, make_schedule

__all__ = ['init_amp', 'Learner', 'build_teacher', 'start_kvstore']


def init_amp(opt, ctx):
    """--amp: MXNet's AMP set up for float16 on a GPU, bfloat16 on the CPU. Returns (the amp module, the dtype), or
    (None, None) without --amp."""
    if opt.amp:
        from mxnet.contrib import amp
        amp_dtype = 'float16' if ctx[0].device_type == 'gpu' else 'bfloat16'
        amp.init(target_dtype=amp_dtype)
        return amp, amp_dtype
    return None, None


class Learner:
    """The network, the teacher, the loss and the trainer of a run (:meth:`build_model`, then
    :meth:`build_trainer`), and ``num_update``, the optimizer updates done so far (the training loop counts on)."""

    def __init__(self, opt, runtime, ctx, amp=None, amp_dtype=None):
        self.opt, self.runtime, self.ctx, self.amp, self.amp_dtype = opt, runtime, ctx, amp, amp_dtype

    def build_model(self, build_net, classes, log):
        """The student (``build_net(opt, ctx, classes, kwargs)`` if given, else by --model), the teacher, the loss."""
        opt, ctx = self.opt, self.ctx
        kwargs, self.model_notes = student_kwargs(opt, ctx)
        if build_net is not None:
            net = build_net(opt, ctx, classes, kwargs)
        else:
            net = create_model(opt.model, classes, ctx, opt.use_pretrained, kwargs)
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
            self.teacher = build_teacher(opt, ctx, classes)

        sparse = not (opt.label_smoothing or opt.mixup)
        if self.distillation:
            from ..gluoncv.compat import import_gluoncv
            gcv = import_gluoncv()
            self.loss_fn = gcv.loss.DistillationSoftmaxCrossEntropyLoss(temperature=opt.temperature,
                                                                       hard_weight=opt.hard_weight,
                                                                       sparse_label=sparse)
        else:
            self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(sparse_label=sparse)

    def build_trainer(self, plan, resume, log):
        """The gluon Trainer for the batches of ``plan`` (a :class:`~.plan.DataPlan`), continuing ``resume``."""
        opt, rt = self.opt, self.runtime
        self.lr_note = ''
        if opt.lr_scale:
            base, ref = opt.lr_scale
            opt.lr = base * plan.global_batch / ref
            self.lr_note = ' (recipe %s: %g x global batch %d / %d)' % (opt.recipe, base, plan.global_batch, ref)
        self.schedule = make_schedule(opt, plan.iters_per_epoch)
        self.lr_probe = LRProbe(self.schedule)
        # begin_num_update=-1: MXNet's first update is then number 0, the schedule's first iteration
        optimizer_params = {'wd': opt.wd, 'momentum': opt.momentum, 'lr_scheduler': self.schedule,
                            'begin_num_update': -1}
        if opt.dtype == 'float16':   # float32 master weights (MXNet's optimizers use them for float16 only)
            optimizer_params['multi_precision'] = True
        params = self.net.collect_params()
        if rt.kind == 'dist' and opt.optimizer == NAG_TORCH:
            log.info('--optimizer %s runs on the dist servers: they must have imported rexnet_gluon.train.optimizer '
                     'before their loop started (scripts/launch_dist.py starts them so; on other hosts run '
                     '`python scripts/launch_dist.py --serve` as the server)', NAG_TORCH)
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
        if resume.start_epoch and not (opt.resume_states and rt.can_save_states):
            # no optimizer states: fresh momentum, but the LR schedule continues where the run stopped (GluonCV
            # restarts it at update 0). Set before the first step, which sends the optimizer to dist servers.
            updates = resume.updates if resume.updates is not None else \
                resume.start_epoch * plan.iters_per_epoch
            trainer._optimizer.begin_num_update = trainer._optimizer.num_update = updates - 1
            log.warning('starting at epoch %d without optimizer states: fresh momentum, LR schedule at update %d',
                        resume.start_epoch, updates)
        if self.amp is not None:
            self.amp.init_trainer(trainer)
        self.trainer = trainer
        if len(self.ctx) > 1:
            start_kvstore(trainer)
            if opt.resume_params:
                restore_device_stats(self.net, opt.resume_params, log)
        self.step_batch = rt.step_batch(plan.per_worker_batch)
        self.num_update = self.updates_done()

    def updates_done(self):
        """Updates done so far (the optimizer counts from begin_num_update = -1)."""
        return int(self.trainer._optimizer.num_update) + 1


def start_kvstore(trainer):
    """Start the trainer's kvstore now rather than at the first step. It broadcasts device 0's copy of every
    parameter to the other devices when it starts, BatchNorm running statistics included: at the first step that
    overwrote the statistics the other devices had just computed from their own images (and, on resume, the ones
    restored for them)."""
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()


def build_teacher(opt, ctx, classes):
    """--teacher with its --teacher-params weights ('random': untrained; default: the published ones), cast,
    initialized and hybridized as the student is."""
    source = opt.teacher_params
    pretrained = False if (source or '').lower() == 'random' else (source or True)
    if isinstance(pretrained, str) and not os.path.isfile(pretrained):
        raise TrainingError('--teacher-params %s does not exist' % pretrained)
    try:
        teacher = create_model(opt.teacher, classes, ctx, pretrained, opt.teacher_kwargs_dict)
    except TrainingError as err:
        raise TrainingError('cannot build the teacher --teacher %s: %s\nGive its weights with --teacher-params '
                            'FILE (a .params of that network with %d classes), or --teacher-params random for '
                            'an untrained teacher (smoke tests only).' % (opt.teacher, err, classes))
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
