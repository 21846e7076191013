"""GluonCV's ImageNet training script for ReXNet, with its bugs fixed and what a long run needs added.

This module runs it: :class:`Session` sets a run up from the options (devices and kvstore, logger, resume state and
seed, data plan, learner, outputs, in that order) and :meth:`~Session.fit` runs the epoch loop; :func:`run` maps
the outcome to an exit status. ``scripts/train_imagenet.py`` is a thin wrapper over :func:`main`;
``scripts/finetune.py`` and ``scripts/verify_pretrained.py`` use :func:`~.finetune.finetune_main` and
:func:`~.verify.verify_main`, which share the model building, data, loop, evaluation, checkpoints and logs.

What is GluonCV's (master ``scripts/classification/imagenet/train_imagenet.py``): every flag with the same name,
meaning and default, the model kwargs, NAG, the LR schedule shape, mixup / label smoothing / distillation, the
checkpoint names and the log lines. What is fixed: the ImageFolder path works; warmup starts at ``--warmup-lr``
(and the first update uses the schedule's first value: MXNet numbers updates from 1); ``--num-training-samples`` is
counted from the data (the flag still overrides); ``--use-gn`` picks a GroupNorm group count that divides every
ReXNet layer; DALI and bad configurations are clear errors, never prompts. What is added: see ``--help`` (contexts,
kvstores incl. sharding and gradient averaging, AMP, the ReXNet recipe, RandAugment / random erasing, seeding and
exact ``--resume``, atomic checkpoints, NaN stop, CSV/JSON metrics, PNG curves).
"""
import logging
import sys

from .checkpoints import find_latest_checkpoint, saving_enabled
from .errors import NonFiniteError, TrainingError
from .flags import parse_args
from .learner import Learner, init_amp
from .logs import LOGGER, close_logger, namespace_repr, setup_logger
from .loop import EpochLoop
from .outputs import Outputs
from .plan import DataPlan
from .resume import resume_state
from .runtime import make_contexts, seed_everything, setup_runtime

__all__ = ['check_config', 'check_devices', 'Session', 'run', 'main']


def check_config(opt):
    """Option combinations that cannot run, refused before anything is set up."""
    if opt.data_backend != 'mxnet':
        raise TrainingError('--data-backend %s: NVIDIA DALI is not supported by this script; use the default '
                            '--data-backend mxnet (with --use-rec for the fast C++ RecordIO reader)'
                            % opt.data_backend)
    if opt.dtype not in ('float32', 'float16', 'float64'):
        raise TrainingError('--dtype %s is not supported: use float32, float16 (GPU), float64, or --amp '
                            '(float16 on GPU, bfloat16 on CPU)' % opt.dtype)
    if opt.dtype == 'float64' and opt.kvstore.startswith('dist'):
        # measured: every weight of a float64 dist_sync run came back float32-representable
        raise TrainingError('--dtype float64 with --kvstore %s: the ps-lite kvstore hands the weights back as '
                            'float32 values, so the run would not be float64. Use --kvstore horovod (keeps float64) '
                            'or float32.' % opt.kvstore)
    if opt.use_gn and opt.mode == 'hybrid':
        raise TrainingError("--use-gn cannot be hybridized: gluoncv.nn.GroupNorm reads x.shape in its forward, "
                            "which a symbol does not have. Drop --mode hybrid (imperative) or --use-gn.")
    if opt.amp and opt.dtype != 'float32':
        raise TrainingError('--amp and --dtype %s exclude each other: --amp keeps float32 weights and casts '
                            'per operator; --dtype float16 casts the whole network' % opt.dtype)


def check_devices(opt, ctx):
    """What the contexts cannot do: SyncBatchNorm and float16 on the CPU."""
    if opt.syncbn and ctx[0].device_type == 'cpu':
        raise TrainingError('--syncbn needs GPUs: MXNet 1.9.1\'s SyncBatchNorm waits for all devices at a '
                            'barrier and hangs with CPU contexts (--cpus)')
    if opt.dtype == 'float16' and ctx[0].device_type == 'cpu':
        raise TrainingError('--dtype float16 needs a GPU: MXNet has no float16 GEMM/convolution on the CPU '
                            '("FP16 gemm on cpu not implemented"). On the CPU use float32, or --amp for '
                            'bfloat16 mixed precision.')


class Session:
    """One training run: set-up from the options (:meth:`setup`), then :meth:`fit`; :meth:`close` at the end."""

    def __init__(self, opt, build_net=None, prefix='imagenet'):
        self.opt, self.build_net, self.prefix = opt, build_net, prefix
        self.logger = logging.getLogger(LOGGER)
        self.logger_ready = False
        self.plan = self.learner = self.outputs = None

    def setup(self):
        """Everything before the first epoch, in this order (seeding before the data: --resume is bit-exact)."""
        opt = self.opt
        check_config(opt)
        ctx = make_contexts(opt)
        check_devices(opt, ctx)
        self.runtime, self.ctx = setup_runtime(opt, ctx)
        self.logger = setup_logger(opt.logging_file, self.runtime.rank)
        self.logger_ready = True
        log = self.logger
        log.info(namespace_repr(opt))
        for line in getattr(opt, 'renamed', ()):
            log.info(line)
        self.resume = resume_state(opt, self.prefix, log)
        seed_everything(opt.seed)
        amp, amp_dtype = init_amp(opt, self.ctx)
        self.plan = DataPlan(opt, self.runtime, self.ctx)
        self.plan.build(log)
        self.learner = Learner(opt, self.runtime, self.ctx, amp, amp_dtype)
        self.learner.build_model(self.build_net, self.plan.classes, log)
        self.learner.build_trainer(self.plan, self.resume, log)
        self.outputs = Outputs(opt, self.prefix, self.runtime, self.ctx, self.plan, self.learner, self.resume, log)
        self.plan.log_summary(log)

    @property
    def last_checkpoint(self):
        return self.outputs.last_checkpoint if self.outputs is not None else None

    @property
    def metrics(self):
        return self.outputs.metrics if self.outputs is not None else None

    def fit(self):
        EpochLoop(self.opt, self.ctx, self.runtime, self.plan, self.learner, self.outputs, self.resume.start_epoch,
                  self.logger).fit()

    def close(self):
        if self.plan is not None:
            self.plan.close()


def run(opt, build_net=None, prefix='imagenet'):
    """Set up and train; returns the process exit status (0 ok, 1 NaN/inf, 2 configuration, 130 interrupted)."""
    r = Session(opt, build_net, prefix)
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
            'params_path') if saving_enabled(opt) else None
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
            close_logger(logging.getLogger(LOGGER))
    return status


def main(argv=None):
    """``scripts/train_imagenet.py``."""
    try:
        opt = parse_args(argv)
    except TrainingError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    return run(opt)
