"""``python -m rexnet_gluon models``: the zoo as a Markdown table (the command protocol of ``__main__``)."""
from .registry import model_table_markdown

UsageError = ValueError
HANDLED_ERRORS = (ValueError,)


def add_arguments(parser):
    parser.add_argument('--markdown', action='store_true', help='print the Markdown table (default: the same)')


def run(args):
    print(model_table_markdown())
    return 0
