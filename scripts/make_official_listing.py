#!/usr/bin/env python
"""Write the official state-dict listing: key names and shapes of every released clovaai ReXNet.

    git clone https://github.com/clovaai/rexnet /tmp/clovaai-rexnet      # rexnetv1.py, rexnetv1_lite.py
    python scripts/make_official_listing.py /tmp/clovaai-rexnet

The result, ``rexnet_gluon/convert/official_state_dicts.json``, is committed: it records facts about the
published checkpoints (what ``torch.save(model.state_dict())`` of the official module holds), so the tests and the
parity demo can build official-layout checkpoints without the official code and without the converter's own
parameter table (which they are meant to check). It was generated once with this script from clovaai/rexnet at
commit 61debcc; run it again only if the official repository changes.
"""
import argparse
import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

from rexnet_gluon.convert.official_listing import LISTING_PATH  # noqa: E402
from rexnet_gluon.utils.fileio import atomic_write_text  # noqa: E402

V1_WIDTHS = ('1.0', '1.3', '1.5', '2.0', '3.0')
LITE_WIDTHS = ('1.0', '1.3', '1.5', '2.0')


def _load(folder, filename):
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
        sys.exit('error: %s not found: give the folder of a clovaai/rexnet checkout' % path)
    spec = importlib.util.spec_from_file_location(filename[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listing(model):
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


def to_json(out):
    """One key per line, so a diff of the listing reads key by key."""
    models = ['%s: [\n%s\n]' % (json.dumps(name), ',\n'.join(json.dumps(row) for row in rows))
              for name, rows in out.items()]
    return '{\n' + ',\n'.join(models) + '\n}\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('clovaai_dir', help='folder holding the official rexnetv1.py and rexnetv1_lite.py')
    p.add_argument('--output', default=LISTING_PATH)
    args = p.parse_args(argv)
    v1 = _load(args.clovaai_dir, 'rexnetv1.py')
    lite = _load(args.clovaai_dir, 'rexnetv1_lite.py')
    out = {}
    for w in V1_WIDTHS:
        out['rexnet_%sx' % w] = listing(v1.ReXNetV1(width_mult=float(w)))
    for w in LITE_WIDTHS:
        out['rexnet_lite_%sx' % w] = listing(lite.ReXNetV1_lite(multiplier=float(w)))
    atomic_write_text(args.output, to_json(out))
    print('wrote %s: %s' % (args.output, ', '.join('%s (%d keys)' % (k, len(v)) for k, v in out.items())))
    return 0


if __name__ == '__main__':
    sys.exit(main())
