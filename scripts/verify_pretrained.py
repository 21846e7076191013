#!/usr/bin/env python
"""Evaluate a model on ImageNet-style validation data (GluonCV verify_pretrained.py): top-1/top-5 error, throughput.

    python scripts/verify_pretrained.py --model rexnet_1.0x --data-dir ~/.mxnet/datasets/imagenet
    python scripts/verify_pretrained.py --model rexnet_1.0x --rec-dir ~/.mxnet/datasets/imagenet/rec --num-gpus 1
    python scripts/verify_pretrained.py --model rexnet_1.0x --params-file params/imagenet-rexnet_1.0x-399.params
    python scripts/verify_pretrained.py --model rexnet_1.0x --benchmark --batch-size 64
    python scripts/verify_pretrained.py --model rexnet_1.0x --data-dir DIR --runtime openvino   # checked engine
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.deploy.runtimes import choose_engine  # noqa: E402
from rexnet_gluon.train import verify_main as _verify_main  # noqa: E402


def verify_main(argv=None):
    """The verification with the deployment engines available to ``--runtime``."""
    return _verify_main(argv, choose_engine=choose_engine)


if __name__ == '__main__':
    sys.exit(verify_main())
