"""Where a run starts: --resume (the latest complete checkpoint) or --resume-params (its .json beside it) decide
the start epoch, the metrics history carried over, the LR schedule's update count and the seed."""
import json
import os

from .checkpoints import find_latest_checkpoint, saving_enabled
from .errors import TrainingError

__all__ = ['ResumeState', 'resume_state']


class ResumeState:
    """The first epoch to run, the metrics ``history`` of the epochs before it, the best validation top-1 error so
    far, and the optimizer updates done (``updates``; None without a checkpoint's metadata)."""

    def __init__(self, start_epoch=0, history=(), best_err=1.0, updates=None):
        self.start_epoch, self.history, self.best_err, self.updates = start_epoch, list(history), best_err, updates


def resume_state(opt, prefix, log):
    """The :class:`ResumeState` of this run. Sets ``opt.resume_params`` / ``opt.resume_states`` (--resume) and
    ``opt.seed`` (the checkpoint's, else drawn) as a side effect."""
    # --resume: the latest complete checkpoint decides the start epoch, the seed and the history.
    history, best_err, start_epoch = [], 1.0, opt.resume_epoch
    resumed_updates = None
    ckpt = None
    if opt.resume:
        if not saving_enabled(opt):
            raise TrainingError('--resume needs checkpoints: give --save-dir and a --save-frequency > 0')
        ckpt = find_latest_checkpoint(opt.save_dir, prefix, opt.model)
        if ckpt is None:
            log.info('--resume: no checkpoint of %s in %s, starting from scratch', opt.model, opt.save_dir)
        else:
            opt.resume_params, opt.resume_states = ckpt['params_path'], ckpt['states_path'] or ''
            start_epoch = ckpt['epoch'] + 1
            log.info('--resume: continuing from %s (epoch %d done), next epoch %d',
                     ckpt['params_path'], ckpt['epoch'], start_epoch)
    elif opt.resume_params:
        sidecar = os.path.splitext(opt.resume_params)[0] + '.json'
        if os.path.isfile(sidecar):
            with open(sidecar) as f:
                ckpt = json.load(f)
    if ckpt:
        history = [r for r in ckpt.get('history', []) if r['epoch'] < start_epoch]
        best_err = ckpt.get('best_val_err_top1', 1.0)
        resumed_updates = ckpt.get('num_update')
        if opt.seed is None:
            opt.seed = ckpt.get('seed')
        elif ckpt.get('seed') is not None and ckpt['seed'] != opt.seed:
            log.warning('--seed %d differs from the checkpoint\'s seed %d: the continued run will not match '
                        'an uninterrupted one', opt.seed, ckpt['seed'])
    if opt.seed is None:
        opt.seed = int.from_bytes(os.urandom(4), 'little') & 0x7fffffff
    return ResumeState(start_epoch, history, best_err, resumed_updates)
