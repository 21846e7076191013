#!/usr/bin/env python
"""Convert PyTorch ReXNet checkpoints to MXNet Gluon .params and prove numerical parity.

    python convert/pt2mx.py --checkpoint rexnetv1_1.0.pth --output rexnet_1.0x.params --check
    python convert/pt2mx.py            # no network needed: random checkpoints of every width, converted and checked
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.convert.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
