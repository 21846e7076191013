"""``python -m rexnet_gluon COMMAND ...``

    python -m rexnet_gluon predict cat.jpg photos/ --model rexnet_1.0x [--params FILE] [--runtime auto] [--json]
    python -m rexnet_gluon export --model rexnet_1.0x --format onnx [--params FILE] [--output PREFIX]

Each command lives in its own module (``predict``, ``export``) with ``add_arguments(parser)`` and
``run(args) -> exit status``; add a command by adding an entry to ``COMMANDS``. Bad input prints
``error: ...`` and exits with status 2, without a traceback.
"""
import argparse
import importlib
import sys

# (name, module, one-line help)
COMMANDS = [
    ('predict', 'rexnet_gluon.deploy.predict',
     'classify images (files, folders, globs), print the top-k classes per image (table, JSON or CSV)'),
    ('models', 'rexnet_gluon.zoo.cli', 'list the model zoo: parameters, MACs, reported accuracy, weight source'),
    ('export', 'rexnet_gluon.deploy.export.cli',
     'export for deployment (MXNet symbol, ONNX, OpenVINO, INT8, bfloat16) and verify it'),
]


def build_parser():
    p = argparse.ArgumentParser(prog='python -m rexnet_gluon',
                                description='ReXNet for MXNet Gluon: command line tools.')
    sub = p.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, module, help_text in COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + '.')
        importlib.import_module(module).add_arguments(sp)
        sp.set_defaults(_module=module)
    return p


def main(argv=None):
    from rexnet_gluon.utils.quiet import quiet_warnings
    quiet_warnings()
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return module.run(args)
    except module.UsageError as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except module.HANDLED_ERRORS as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
