"""Classify images with a ReXNet: ``python -m rexnet_gluon predict INPUT... --model rexnet_1.0x``.

Inputs are files, folders (recursive, :data:`~rexnet_gluon.deploy.images.IMAGE_EXTENSIONS`) and glob patterns
(expanded here, so quoted patterns work). Images are read with the model's evaluation preprocessing
(:mod:`rexnet_gluon.deploy.images`) and classified in batches by the engine :func:`load_predictor` picks
(``--runtime``). A file that cannot be read is reported on stderr and skipped. Exit status: 0 when every image was
classified, 1 when some could not be read, 2 for bad usage or when no image could be read.
"""
import csv
import io
import json
import os
import sys

import numpy as np

from .errors import UsageError
from .images import IMAGE_EXTENSIONS, ImageLoadError, image_files
from .predictor import Predictor, class_names, load_model, load_predictor
from .runtimes import AUTO_ORDER, ParityFailure, RuntimeUnavailable, build_engine

__all__ = ['predict', 'top_k', 'expand_inputs', 'classify', 'format_predictions', 'add_arguments', 'run',
           'load_model', 'model_preprocess', 'class_names', 'check_model_name']

HANDLED_ERRORS = (ImageLoadError, RuntimeUnavailable, ParityFailure)   # printed as ``error: ...``, exit status 2
GLOB_CHARS = '*?['


def top_k(row, names, k):
    """``[(class_index, name, probability)]`` of the ``k`` largest probabilities in ``row``, largest first."""
    order = np.argsort(-row, kind='stable')[:min(k, len(row))]
    return [(int(i), names[i], float(row[i])) for i in order]


def predict(net, images, topk=5):
    """Top-k predictions per image with the plain network: a list (one per image) of ``[(index, name, prob)]``.

    ``images``: an (N, 3, H, W) or (3, H, W) NDArray/numpy array already preprocessed, a list of those,
    or image paths (read with ``net.preprocess``). Probabilities are the softmax of the logits.
    """
    from .predictor import check_context
    if not isinstance(topk, int) or topk < 1:
        raise ValueError('topk must be a positive integer, got %r' % (topk,))
    ctx = check_context(_net_context(net))
    predictor = Predictor(build_engine('mxnet', net, None, ctx), getattr(net, 'preprocess', None),
                          class_names(net, net.num_classes))
    if isinstance(images, (list, tuple)) and images and not isinstance(images[0], (str, os.PathLike)):
        images = np.concatenate([predictor.batch(item) for item in images])
    return [top_k(row, predictor.classes, topk) for row in predictor(images)]


def _net_context(net):
    for p in net.collect_params().values():
        try:
            return p.list_ctx()[0]
        except RuntimeError:   # not initialised
            continue
    return None


def expand_inputs(inputs):
    """(image paths, [(input, problem)]): files as given, folders searched recursively, glob patterns expanded;
    duplicates dropped, order kept. Inputs that name nothing are problems, reported by the caller."""
    import glob
    paths, problems = [], []
    for item in inputs:
        if os.path.isdir(item):
            found = image_files(item)
            paths += found
            if not found:
                problems.append((item, 'a folder with no image files in it (%s)' % ', '.join(IMAGE_EXTENSIONS)))
        elif os.path.exists(item) or not any(c in item for c in GLOB_CHARS):
            paths.append(item)     # a missing file is reported when it is read, like an unreadable one
        else:
            matches = sorted(glob.glob(item, recursive=True))
            for m in matches:
                paths += image_files(m) if os.path.isdir(m) else [m]
            if not matches:
                problems.append((item, 'no file matches this pattern'))
    return list(dict.fromkeys(paths)), problems


def _progress(total, batch_size):
    from tqdm import tqdm
    quiet = total < 2 * batch_size or not sys.stderr.isatty()   # a bar for a few images, or in a log, is noise
    return tqdm(total=total, file=sys.stderr, unit='img', disable=quiet, leave=False)


def classify(predictor, paths, topk):
    """(results [(path, top-k)], failures [(path, reason)]): ``paths`` read and classified ``predictor.batch_size``
    at a time; a file that cannot be read is reported on stderr at once and skipped."""
    results, failures = [], []
    bs = predictor.batch_size
    with _progress(len(paths), bs) as bar:
        for start in range(0, len(paths), bs):
            arrays, good = [], []
            for path in paths[start:start + bs]:
                try:
                    arrays.append(predictor.load(path))
                    good.append(path)
                except ImageLoadError as err:
                    failures.append((path, str(err)))
                    bar.write('skipped %s' % err, file=sys.stderr)
            if arrays:
                probs = predictor(np.concatenate(arrays))
                results += [(p, top_k(row, predictor.classes, topk)) for p, row in zip(good, probs)]
            bar.update(len(paths[start:start + bs]))
    return results, failures


def format_predictions(path, preds):
    """A small table under the file name: rank, probability (%), class index, class name."""
    lines = [str(path), '  %4s  %8s  %5s  %s' % ('rank', 'prob', 'index', 'class')]
    for rank, (index, name, prob) in enumerate(preds, 1):
        lines.append('  %4d  %7.2f%%  %5d  %s' % (rank, 100.0 * prob, index, name))
    return '\n'.join(lines)


def _as_table(header, results, failures):
    return header + '\n\n' + '\n\n'.join(format_predictions(p, preds) for p, preds in results) + '\n'


def _as_json(header, results, failures):
    doc = dict(header, predictions=[{'path': p, 'top': [{'rank': r, 'index': i, 'class': n, 'probability': pr}
                                                        for r, (i, n, pr) in enumerate(preds, 1)]}
                                    for p, preds in results],
               failed=[{'path': p, 'error': e} for p, e in failures])
    return json.dumps(doc, indent=1) + '\n'


def _as_csv(header, results, failures):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['path', 'rank', 'index', 'class', 'probability'])
    for path, preds in results:
        w.writerows([path, r, i, n, repr(pr)] for r, (i, n, pr) in enumerate(preds, 1))
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# Command line


def add_arguments(p):
    """Arguments of ``python -m rexnet_gluon predict``."""
    p.add_argument('images', nargs='+', metavar='INPUT',
                   help='image files (anything Pillow reads), folders (searched recursively) or glob patterns '
                        '(quote them: "photos/**/*.jpg")')
    p.add_argument('--model', required=True, metavar='NAME',
                   help='zoo name, e.g. rexnet_1.0x, rexnet_lite_1.0x, rexnetr_2.0x, or an alias: rexnet, timm\'s '
                        'rexnet_100, the official file stem rexnetv1_1.0, ... (any case)')
    weights = p.add_mutually_exclusive_group()
    weights.add_argument('--pretrained', action='store_true',
                         help='the published weights, fetched and converted once, then cached (the default)')
    weights.add_argument('--params', metavar='FILE',
                         help='local weights instead: a converted Gluon .params, or a PyTorch .pth / .safetensors '
                              'checkpoint (converted on the fly)')
    p.add_argument('--runtime', default='auto', choices=('auto',) + AUTO_ORDER,
                   help='the engine (default auto: the first of %s that is installed and reproduces the network on '
                        'generated images; mxnet on a GPU)' % ', '.join(AUTO_ORDER))
    p.add_argument('--batch-size', type=int, default=32, metavar='N', help='images per engine call (default 32)')
    p.add_argument('--topk', type=int, default=5, metavar='K', help='how many classes to show per image (default 5)')
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument('--json', action='store_true', help='print JSON instead of the table')
    fmt.add_argument('--csv', action='store_true', help='print CSV (path, rank, index, class, probability)')
    p.add_argument('--output', metavar='FILE', help='write the table / JSON / CSV to FILE (atomically), not stdout')
    p.add_argument('--gpu', type=int, metavar='N', help='run on GPU N (default: CPU; runtime mxnet)')
    return p


def _context(gpu):
    import mxnet as mx
    from .predictor import check_context
    if gpu is None:
        return mx.cpu()
    if gpu < 0:
        raise UsageError('--gpu must be >= 0')
    try:
        return check_context(mx.gpu(gpu))
    except UsageError as err:
        raise UsageError('--gpu %d: %s' % (gpu, str(err).split(': ', 1)[1])) from None


def model_preprocess(info, params=None):
    """The evaluation preprocessing of zoo model ``info`` with local weights ``params``: a training checkpoint's
    (its JSON: the size and transform its validation used), else the zoo entry's."""
    from ..zoo.weights import checkpoint_meta
    return dict(info.preprocess, **checkpoint_meta(params).get('preprocess', {}))


def check_model_name(name):
    from ..zoo import get_model_info
    try:
        return get_model_info(name)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _write(args, text):
    if args.output:
        from ..utils.fileio import atomic_write_text
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)


def run(args):
    """Run the ``predict`` subcommand; returns the exit status."""
    if args.topk < 1 or args.batch_size < 1:
        raise UsageError('--topk and --batch-size must be >= 1')
    info = check_model_name(args.model)
    paths, problems = expand_inputs(args.images)
    for item, problem in problems:
        print('skipped %s: %s' % (item, problem), file=sys.stderr)
    if not paths:
        raise UsageError('no image to classify (%d input%s skipped)' % (len(problems), 's'[len(problems) == 1:]))
    ctx = _context(args.gpu)
    predictor = load_predictor(info.name, args.params, runtime=args.runtime, ctx=ctx, batch_size=args.batch_size)
    print('runtime %s (%s)' % (predictor.runtime, args.runtime), file=sys.stderr)
    for line in predictor.choice + predictor.notes:
        print('  ' + line, file=sys.stderr)
    results, failures = classify(predictor, paths, args.topk)
    failures = [(item, 'skipped: ' + problem) for item, problem in problems] + failures
    if not results:
        print('error: none of the %d image%s could be read' % (len(paths), 's'[len(paths) == 1:]), file=sys.stderr)
        return 2
    crop = predictor.preprocess['crop']
    header = dict(model=info.name, weights=args.params or 'published weights', runtime=predictor.runtime,
                  input_size=crop, topk=len(results[0][1]), classes=predictor.num_classes)
    if args.json or args.csv:
        _write(args, (_as_json if args.json else _as_csv)(header, results, failures))
    else:
        _write(args, _as_table('%s (%s), input %dx%d, top-%d of %d classes, runtime %s'
                               % (info.name, header['weights'], crop, crop, header['topk'], header['classes'],
                                  predictor.runtime), results, failures))
    if failures:
        print('%d of %d input%s could not be classified (see above)'
              % (len(failures), len(paths) + len(problems), 's'[len(paths) + len(problems) == 1:]), file=sys.stderr)
    return 1 if failures else 0
