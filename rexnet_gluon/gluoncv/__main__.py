"""Run an unmodified GluonCV script with the ReXNet names in GluonCV's model zoo.

    python -m rexnet_gluon.gluoncv PATH/TO/train_imagenet.py --model rexnet_1.0x ...

Works beside torch >= 2 (see rexnet_gluon.utils.gluoncv_import). A ``--model`` / ``--teacher`` given as an alias
(``rexnet``, timm's ``rexnet_100``, ``rexnetv1_1.0``, any case) is replaced by the zoo name before the script
runs, so its logs and checkpoint names (``imagenet-rexnet_1.0x-0.params``) use the canonical name.
"""
import os
import runpy
import sys

USAGE = 'usage: python -m rexnet_gluon.gluoncv GLUONCV_SCRIPT.py [script arguments...]'
NAME_FLAGS = ('--model', '--teacher')


def canonical_argv(args):
    """``args`` with the values of --model / --teacher (``--model X`` or ``--model=X``) that are rexnet_gluon aliases
    replaced by their zoo names; other values (GluonCV names) untouched. Returns (new args, ['rexnet -> ...'])."""
    from ..zoo.registry import canonical_name
    out, notes = list(args), []

    def resolve(value):
        try:
            name = canonical_name(value)
        except ValueError:
            return value
        if name != value:
            notes.append('%s -> %s' % (value, name))
        return name

    for i, arg in enumerate(out):
        flag, eq, value = arg.partition('=')
        if flag in NAME_FLAGS and eq:
            out[i] = flag + '=' + resolve(value)
        elif i > 0 and out[i - 1] in NAME_FLAGS:
            out[i] = resolve(arg)
    return out, notes


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
    args, notes = canonical_argv(argv[1:])
    for note in notes:
        print('rexnet_gluon: %s' % note, file=sys.stderr)
    sys.argv = [script] + args
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))   # as `python script.py` would
    runpy.run_path(script, run_name='__main__')
    return 0


if __name__ == '__main__':
    sys.exit(main())
