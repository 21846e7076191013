"""The 'rexnet_gluon.train' logger: lines to stderr (through tqdm, beside the progress bar) and to
--logging-file on rank 0; the options as its first line."""
import logging
import os
import sys

from .flags import args_dict

__all__ = ['LOGGER', 'setup_logger', 'close_logger', 'namespace_repr']

LOGGER = 'rexnet_gluon.train'


class _TqdmHandler(logging.Handler):
    """Log lines to stderr through tqdm.write, so they do not break the progress bar."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:   # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logger(logging_file, rank, name=LOGGER):
    logger = logging.getLogger(name)
    close_logger(logger)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter('%(message)s' if rank == 0 else '[rank %d] %%(message)s' % rank)
    stream = _TqdmHandler()
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if rank == 0 and logging_file:
        folder = os.path.dirname(os.path.abspath(logging_file))
        os.makedirs(folder, exist_ok=True)
        fh = logging.FileHandler(logging_file)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


def close_logger(logger):
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def namespace_repr(opt):
    return 'Namespace(%s)' % ', '.join('%s=%r' % (k, v) for k, v in sorted(args_dict(opt).items()))
