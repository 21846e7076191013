"""Checkpoint files: ``{prefix}-{model}-{epoch}`` (and ``-best``) .params / .states / .json, each written
atomically, the .json last (it marks the checkpoint complete); finding the latest complete one."""
import json
import os

import numpy as np

from ..utils.fileio import atomic_write, atomic_write_text

__all__ = ['CHECKPOINT_FORMAT', 'saving_enabled', 'json_default', 'checkpoint_stem', 'save_checkpoint',
           'find_latest_checkpoint']

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
    """``stem.params``, ``stem.states``, then ``stem.json`` (which marks the checkpoint complete), each atomic."""
    atomic_write(stem + '.params', net.save_parameters)
    if save_states:
        atomic_write(stem + '.states', trainer.save_states)
    meta = dict(meta, params=os.path.basename(stem + '.params'),
                states=os.path.basename(stem + '.states') if save_states else None)
    atomic_write_text(stem + '.json', json.dumps(meta, indent=1, default=json_default))
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
