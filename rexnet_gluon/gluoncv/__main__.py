"""Run an unmodified GluonCV script with the ReXNet names in GluonCV's model zoo.

    python -m rexnet_gluon.gluoncv PATH/TO/train_imagenet.py --model rexnet_1.0x ...

Works beside torch >= 2 (see rexnet_gluon.utils.gluoncv_import).
"""
import os
import runpy
import sys

USAGE = 'usage: python -m rexnet_gluon.gluoncv GLUONCV_SCRIPT.py [script arguments...]'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE + '\n\nRuns the script as __main__ after registering rexnet_gluon\'s models '
              '(rexnet_1.0x, ..., see rexnet_gluon.get_model_list()) in gluoncv.model_zoo.')
        return 0 if argv else 2
    script = argv[0]
    if not os.path.isfile(script):
        print('error: %s is not a file. Give the path of a GluonCV script, e.g. '
              'gluon-cv/scripts/classification/imagenet/train_imagenet.py' % script, file=sys.stderr)
        return 2
    from .compat import import_gluoncv
    import_gluoncv()
    sys.argv = [script] + argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))   # as `python script.py` would
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main())
