#!/usr/bin/env python
"""Train a classification model (ReXNet or any GluonCV zoo name) on ImageNet-style data.

GluonCV's train_imagenet.py flags, fixed and extended; see ``--help`` and rexnet_gluon/train/flags.py. Examples:

    python scripts/train_imagenet.py --model rexnet_1.0x --recipe rexnet --use-rec --num-gpus 4 --batch-size 128 \\
        --mode hybrid --save-dir params --resume --plot
    python scripts/train_imagenet.py --model rexnet_1.0x --data-dir ~/data/imagenet --cpus 2 --batch-size 16
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.train import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
