#!/usr/bin/env python
"""Export a ReXNet for deployment and verify the export (logic: rexnet_gluon/deploy/export/).

    python scripts/export.py --model rexnet_1.0x --params rexnet_1.0x.params --format onnx
    python scripts/export.py --model rexnet_1.0x --format symbol,onnx,int8,bf16 --output deploy/rexnet_1.0x
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.__main__ import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main(["export"] + sys.argv[1:]))
