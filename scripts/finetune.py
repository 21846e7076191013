#!/usr/bin/env python
"""Fine-tune a pretrained ReXNet on an ImageFolder data set (DATA-DIR/train/<class>/*, DATA-DIR/val/<class>/*).

A new ``nn.Dense(classes)`` head replaces ``net.output`` (GluonCV's transfer-learning recipe) and the pretrained body
learns at ``--body-lr-mult`` times the head's rate; everything else (flags, loop, checkpoints, --resume, metrics,
plots) is scripts/train_imagenet.py's. Example:

    python scripts/finetune.py --model rexnet_1.0x --pretrained true --data-dir ~/data/minc --num-epochs 10 \\
        --lr 0.01 --body-lr-mult 0.1 --batch-size 32 --input-size 224 --plot
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.train import finetune_main  # noqa: E402

if __name__ == '__main__':
    sys.exit(finetune_main())
