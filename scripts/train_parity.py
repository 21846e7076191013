#!/usr/bin/env python
"""Training parity with PyTorch, step by step (needs torch and timm: pip install -e ".[torch]").

    python scripts/train_parity.py --model rexnet_1.0x --steps 20 --dtype float64 --input-size 64

See rexnet_gluon/train/step_parity.py for what is compared; exit status 0 only when every step is within tolerance.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.train.step_parity import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
