"""Training: GluonCV's ``train_imagenet.py`` for ReXNet (and any GluonCV zoo name), fine-tuning, verification.

Modules: ``session`` (a run's set-up and :func:`main`), ``flags``, ``runtime`` (devices, kvstore, seeding),
``resume``, ``plan`` (the data plan), ``learner`` (network, loss, trainer), ``loop`` (the epochs), ``outputs``
(metrics log, checkpoints of an epoch), ``schedule``, ``models``, ``checkpoints``, ``metrics``, ``logs``, ``errors``,
``finetune``, ``verify``, and ``data/`` (sources, transforms, augment, loaders).

May import: the network, ``convert``, ``zoo``, ``gluoncv``, ``utils`` (never ``deploy``: training and deployment
are peers).
"""
from .finetune import finetune_main
from .session import main
from .verify import verify_main

__all__ = ['main', 'finetune_main', 'verify_main']
