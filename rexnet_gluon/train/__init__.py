"""Training: GluonCV's ``train_imagenet.py`` for ReXNet (and any GluonCV zoo name), fine-tuning, verification.

May import: the network, ``convert``, ``zoo``, ``gluoncv``, ``utils`` (never ``deploy``: training and deployment
are peers).
"""
