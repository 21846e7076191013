#!/usr/bin/env python
"""CPU speed of rexnet_gluon (MXNet) against timm's rexnet (PyTorch): inference img/s and peak memory.

    python scripts/benchmark.py                                   # 1.0x, batch 1 and 32, every configuration
    python scripts/benchmark.py --widths 1.0,1.5,lite1.0 --batches 1,8,32 --torch-compile
    python scripts/benchmark.py --configs mx_fast,timm_cl --batches 1 --repeats 3 --output-dir /tmp/bench

The method and the configurations: rexnet_gluon/deploy/benchmark/cli.py (logic: rexnet_gluon/deploy/benchmark/).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.deploy.benchmark.cli import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
