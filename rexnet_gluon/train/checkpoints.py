"""Checkpoint files: ``{prefix}-{model}-{epoch}`` (and ``-best``) .params / .states / .json, each written
atomically, the .json last (it marks the checkpoint complete); finding the latest complete one."""
import json
import os

import numpy as np

from ..utils.fileio import atomic_write, atomic_write_text

__all__ = ['CHECKPOINT_FORMAT', 'saving_enabled', 'json_default', 'checkpoint_stem', 'save_checkpoint',
           'find_latest_checkpoint', 'restore_device_stats']

CHECKPOINT_FORMAT = 'rexnet_gluon.checkpoint/1'


def saving_enabled(opt):
    """Checkpoints are written: a --save-dir and a --save-frequency > 0."""
    return bool(opt.save_dir) and opt.save_frequency > 0


def json_default(obj):
    """json.dumps' fallback: numpy scalars as numbers, classes by dotted name, the rest as str."""
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
    """``stem.params``, ``stem.states``, ``stem.devstats`` (several devices), then ``stem.json`` (which marks the
    checkpoint complete), each atomic."""
    import mxnet as mx
    # A network hybridized with static_alloc writes BatchNorm statistics without the engine tracking the write
    # (MXNet 1.9.1): without this, a save right after a step could read the statistics of the step before.
    mx.nd.waitall()
    atomic_write(stem + '.params', net.save_parameters)
    if save_states:
        atomic_write(stem + '.states', trainer.save_states)
    stats = _device_stats(net)
    if stats:
        atomic_write(stem + '.devstats', lambda tmp: mx.nd.save(tmp, stats))
    meta = dict(meta, params=os.path.basename(stem + '.params'),
                states=os.path.basename(stem + '.states') if save_states else None,
                device_stats=os.path.basename(stem + '.devstats') if stats else None)
    atomic_write_text(stem + '.json', json.dumps(meta, indent=1, default=json_default))
    return stem + '.params'


def _device_stats(net):
    """Each device's BatchNorm running statistics, ``{'DEVICE_INDEX:name': array}``, when there are several
    devices. ``save_parameters`` keeps only their average, and each device updates its own copy from its own
    images: resuming every device from the average would not continue the run exactly."""
    stats = {}
    for name, p in net._collect_params_with_prefix().items():
        if p.grad_req != 'null' or p._data is None or len(p.list_ctx()) < 2:
            continue
        for i, ctx in enumerate(p.list_ctx()):
            stats['%d:%s' % (i, name)] = p.data(ctx)
    return stats


def restore_device_stats(net, params_path, log):
    """After ``net.load_parameters(params_path)``: each device's running statistics as the checkpoint saved them
    (its JSON names a ``.devstats``), if the device count matches; else every device keeps the average (logged)."""
    try:
        with open(os.path.splitext(params_path)[0] + '.json') as f:
            name = json.load(f).get('device_stats')
    except (OSError, ValueError, AttributeError):
        return False
    if not name:
        return False
    import mxnet as mx
    path = os.path.join(os.path.dirname(params_path), name)
    stats = mx.nd.load(path) if os.path.isfile(path) else {}
    params = net._collect_params_with_prefix()
    devices = {int(k.split(':', 1)[0]) for k in stats}
    targets = [p for p in params.values() if p.grad_req == 'null']
    if not stats or not targets or len(devices) != len(targets[0].list_ctx()):
        log.warning('%s holds the running statistics of %d devices, this run has %d: every device starts from '
                    'their average (the continued run will not equal an uninterrupted one)', path, len(devices),
                    len(targets[0].list_ctx()) if targets else 0)
        return False
    for key, value in stats.items():
        i, pname = key.split(':', 1)
        p = params[pname]
        ctx = p.list_ctx()[int(i)]
        p.data(ctx)[:] = value.as_in_context(ctx).astype(p.dtype)
    return True


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
        extra = [os.path.join(save_dir, meta['device_stats'])] if meta.get('device_stats') else []
        if not all(os.path.isfile(p) for p in paths + extra):
            continue
        meta['params_path'] = paths[0]
        meta['states_path'] = paths[1] if len(paths) > 1 else None
        key = (meta['epoch'], meta.get('kind') == 'periodic')
        if best is None or key > best[0]:
            best = (key, meta)
    return best[1] if best else None
