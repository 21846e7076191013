"""Deployment exports of a ReXNet, each one verified before it is published.

    python scripts/export.py --model rexnet_1.0x --params rexnet_1.0x.params --format onnx
    python -m rexnet_gluon export --model rexnet_1.0x --format symbol,onnx,int8,bf16,fast --output out/rexnet

Formats (files for ``--output PREFIX``):

- ``symbol``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` (``net.export``); reloaded with
  ``SymbolBlock.imports``, outputs must be identical.
- ``onnx``: ``PREFIX.onnx`` (``mx.onnx.export_model`` from the exported symbol, batch axis dynamic);
  ``onnx.checker`` full check, then ONNX Runtime at batch 1 and 3 against MXNet.
- ``int8``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the oneDNN INT8 graph
  (``quantize_net(quantized_dtype='int8', calib_mode='naive')``, CPU only); top-1 agreement with fp32
  on a held-out generated set.
- ``bf16``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the bfloat16 graph
  (``amp.convert_hybrid_block``); relative logit difference and top-1 agreement with fp32.
- ``fast``: ``PREFIX-symbol.json`` + ``PREFIX-0000.params`` of the fast fp32 graph (``fast.prepare``: BN folded,
  oneDNN-fused, one image per call); equal to the network within the parity rule on held-out images.

Every format is written into a hidden staging folder next to the output, verified from there, and only then
renamed into place, so an interrupted or failed export leaves nothing under the output prefix; files of a
failed check are kept only with ``keep_failed`` (``--keep-failed``).
"""
import argparse
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import List

import numpy as np

from .predict import ImageLoadError, UsageError, load_image

__all__ = ['FORMATS', 'ExportReport', 'ExportError', 'generated_images', 'calibration_images', 'export_symbol',
           'export_onnx', 'export_int8', 'export_bf16', 'export_fast', 'export_model', 'pinned_onnx_opset',
           'output_files', 'add_arguments', 'run', ]

FORMATS = ('symbol', 'onnx', 'int8', 'bf16', 'fast')
CALIB_SEED = 0        # generated calibration images
EVAL_SEED = 1         # held-out generated images (never used for calibration)
INT8_FP32_OPS = ('elemwise_mul',)   # kept in fp32 by the INT8 export: the Swish products (see export_int8)
FALLBACK_OPSET = 13   # the newest opset mx2onnx has translations for
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff', '.ppm')


class ExportError(RuntimeError):
    """An export that could not be produced (not a failed check: those are in the report)."""


@dataclass
class ExportReport:
    """What an export wrote and measured. ``ok`` is False when any check failed."""
    format: str
    prefix: str
    files: List[str] = field(default_factory=list)       # published paths (empty if nothing was published)
    figures: dict = field(default_factory=dict)          # measured numbers, machine-readable
    lines: List[str] = field(default_factory=list)       # human-readable measurements
    checks: List[tuple] = field(default_factory=list)    # (description, passed)
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self):
        return all(passed for _, passed in self.checks)

    def check(self, description, passed):
        self.checks.append((description, bool(passed)))
        return bool(passed)

    def summary(self):
        out = ['[%s] %s  (%.1f s)' % (self.format, 'PASS' if self.ok else 'FAIL', self.seconds)]
        if self.files:
            out.append('  wrote     ' + ', '.join('%s (%s)' % (f, _size(f)) for f in self.files))
        else:
            out.append('  wrote     nothing (a check failed; --keep-failed publishes the files anyway)')
        out += ['  ' + line for line in self.lines]
        out += ['  check     %s: %s' % (desc, 'ok' if passed else 'FAILED') for desc, passed in self.checks]
        out += ['  note      ' + note for note in self.notes]
        return '\n'.join(out)


def _size(path):
    n = os.path.getsize(path)
    for unit in ('B', 'KB', 'MB', 'GB'):
        if n < 1024 or unit == 'GB':
            return ('%d %s' if unit == 'B' else '%.1f %s') % (n, unit)
        n /= 1024.0


def output_files(fmt, prefix):
    """The files a format writes for ``prefix``."""
    if fmt == 'onnx':
        return [prefix + '.onnx']
    return [prefix + '-symbol.json', prefix + '-0000.params']


# ---------------------------------------------------------------------------------------------------
# Atomic output


class _Staging:
    """A hidden folder beside the output prefix. Files are written there under their final names and moved
    into place by :meth:`publish`; whatever happens, the folder is removed on exit."""

    def __init__(self, prefix):
        self.prefix = os.path.abspath(prefix)
        self.folder, self.base = os.path.split(self.prefix)
        if not self.base:
            raise ExportError('output prefix %r names a folder; give a file prefix such as out/rexnet' % prefix)
        os.makedirs(self.folder, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix='.%s.' % self.base, suffix='.partial', dir=self.folder)
        self.staged_prefix = os.path.join(self.dir, self.base)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def staged(self, final_path):
        return os.path.join(self.dir, os.path.basename(final_path))

    def publish(self, finals):
        """Move staged files to their final paths. Existing files are replaced; if a move fails, the files
        already moved are taken back and the replaced ones restored."""
        backups, done = [], []
        try:
            for final in finals:
                if os.path.exists(final):
                    backup = os.path.join(self.dir, '.old.' + os.path.basename(final))
                    os.replace(final, backup)
                    backups.append((backup, final))
                os.replace(self.staged(final), final)
                done.append(final)
        except BaseException:
            for final in done:
                with contextlib.suppress(OSError):
                    os.remove(final)
            for backup, final in backups:
                with contextlib.suppress(OSError):
                    os.replace(backup, final)
            raise
        return list(finals)


@contextlib.contextmanager
def _native_log_captured():
    """Send what MXNet's C++ side writes to stderr (dozens of lines during quantization) to a buffer; it is
    shown only if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    buf = tempfile.TemporaryFile()
    os.dup2(buf.fileno(), 2)
    try:
        yield buf
    except BaseException:
        sys.stderr.flush()
        os.dup2(saved, 2)
        buf.seek(0)
        text = buf.read().decode('utf-8', 'replace')
        if text.strip():
            sys.stderr.write(text[-8000:])
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        buf.close()


# ---------------------------------------------------------------------------------------------------
# Data


def _upsample(low, size):
    import mxnet as mx
    return mx.nd.contrib.BilinearResize2D(mx.nd.array(low, dtype='float32'), height=size, width=size).asnumpy()


def _normalise_batch(x, preprocess):
    mean = np.asarray(preprocess['mean'], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess['std'], np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def generated_images(n, size, preprocess, seed):
    """``n`` smooth random RGB images, (n, 3, size, size), normalised like decoded photos.

    Each image sums bilinearly upsampled uniform noise at 2, 4, 8 and 16 cells per side (a rough 1/f
    spectrum), with random brightness and contrast, clipped to [0, 1] and rounded to 8 bits like a decoded
    file, then normalised with the model's mean/std. Seeded: the same seed gives the same images.
    """
    rs = np.random.RandomState(seed)
    img = np.zeros((n, 3, size, size), np.float32)
    for cells, weight in ((2, 0.5), (4, 0.3), (8, 0.2), (16, 0.12)):
        img += weight * (_upsample(rs.rand(n, 3, cells, cells), size) - 0.5)
    brightness = rs.uniform(0.3, 0.7, (n, 1, 1, 1))
    contrast = rs.uniform(0.6, 1.8, (n, 1, 1, 1))
    img = np.round(np.clip(brightness + contrast * img, 0, 1) * 255) / 255
    return _normalise_batch(img.astype(np.float32), preprocess)


def preprocess_for_size(preprocess, size):
    """The model's preprocessing with the crop changed to ``size`` (resize keeps the model's crop_pct)."""
    pp = dict(preprocess)
    if size != pp['crop']:
        pp['crop'] = pp['input_size'] = size
        pp['resize'] = int(round(size / pp.get('crop_pct', 1.0)))
    return pp


def calibration_images(folder, preprocess, limit, flag='--calib-dir'):
    """Up to ``limit`` images of ``folder`` (recursive; evenly spaced in sorted order if there are more),
    preprocessed like :func:`predict.load_image`."""
    if not os.path.isdir(folder):
        raise UsageError('%s %s: no such folder' % (flag, folder))
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise UsageError('%s %s holds no image files (%s)' % (flag, folder, ', '.join(IMAGE_EXTENSIONS)))
    if len(paths) > limit:   # evenly spaced, so a class-per-folder tree is sampled across its classes
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    return np.concatenate([load_image(p, preprocess, as_numpy=True) for p in paths], axis=0)


def _held_out(eval_data, num_eval, size, preprocess):
    """The held-out images of an accuracy check: ``eval_data`` (preprocessed, numpy) or generated ones."""
    if eval_data is None:
        return (generated_images(num_eval, size, preprocess, EVAL_SEED),
                'held-out generated images (seed %d)' % EVAL_SEED)
    held = np.asarray(eval_data, np.float32)[:num_eval]
    if len(held) == 0:
        raise ExportError('no held-out images')
    return held, 'held-out images'


def _run(block, x, batch):
    """Logits of ``block`` on the numpy batch ``x``, ``batch`` images at a time, as float32 numpy."""
    import mxnet as mx
    out = []
    for i in range(0, len(x), batch):
        out.append(block(mx.nd.array(x[i:i + batch], dtype=x.dtype)).astype('float32').asnumpy())
    return np.concatenate(out, axis=0)


def _prepared(net, size):
    """Hybridize and run once: the cached graph that export, quantization and AMP need."""
    import mxnet as mx
    net.hybridize()
    net(mx.nd.zeros((1, 3, size, size))).wait_to_read()
    return net


def _imports(prefix):
    import mxnet as mx
    return mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params', ctx=mx.cpu())


def _top1_agreement(a, b):
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def _mean_cosine(a, b):
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30
    return float(np.mean(num / den))


# ---------------------------------------------------------------------------------------------------
# Formats


def export_symbol(net, prefix, size=224, batch=8, preprocess=None, keep_failed=False):
    """``net.export`` to ``prefix``; reloaded with ``SymbolBlock.imports``, the outputs must be identical."""
    t0 = time.time()
    rep = ExportReport('symbol', prefix)
    x = generated_images(batch, size, preprocess or net.preprocess, EVAL_SEED)
    finals = output_files('symbol', prefix)
    with _Staging(prefix) as st:
        _prepared(net, size)
        ref = _run(net, x, batch)
        net.export(st.staged_prefix)
        diff = float(np.abs(_run(_imports(st.staged_prefix), x, batch) - ref).max())
        rep.figures.update(max_abs_diff=diff, logit_scale=float(np.abs(ref).max()), images=len(x))
        rep.lines.append('reload    SymbolBlock.imports vs the Gluon net on %d images: max|diff| %s, logits up to '
                         '%.1f' % (len(x), '0 (identical)' if diff == 0 else '%.3g' % diff, np.abs(ref).max()))
        rep.check('reloaded symbol reproduces the net exactly', diff == 0.0)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


@contextlib.contextmanager
def pinned_onnx_opset(opset):
    """Make mx2onnx stamp and check ``opset`` instead of onnx's newest (restored afterwards).

    mx2onnx translates ops up to opset 13 but labels the model with ``onnx.defs.onnx_opset_version()``
    (19 for onnx 1.14) and checks its graph against that; ops whose schema changed after 13 then fail.
    """
    import onnx
    import onnx.checker
    import onnx.defs
    saved_version = onnx.defs.onnx_opset_version
    saved_imports = onnx.checker.DEFAULT_CONTEXT.opset_imports
    onnx.defs.onnx_opset_version = lambda: opset
    onnx.checker.DEFAULT_CONTEXT.opset_imports = {'': opset}
    try:
        yield
    finally:
        onnx.defs.onnx_opset_version = saved_version
        onnx.checker.DEFAULT_CONTEXT.opset_imports = saved_imports


def _onnx_convert(sym_prefix, onnx_path, size):
    """mx2onnx with a dynamic batch axis; initializers dropped from the graph inputs (ONNX IR >= 4 allows it,
    and ONNX Runtime can then fold them as constants instead of warning once per weight)."""
    import mxnet as mx
    import onnx
    mx.onnx.export_model(sym_prefix + '-symbol.json', sym_prefix + '-0000.params', in_shapes=[(1, 3, size, size)],
                         in_types=[np.float32], onnx_file_path=onnx_path, dynamic=True,
                         dynamic_input_shapes=[(None, 3, size, size)])
    model = onnx.load(onnx_path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnx.save(model, onnx_path)
    onnx.checker.check_model(onnx_path, full_check=True)
    return onnx.load(onnx_path)


def _ort_session(path):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])


def export_onnx(net, prefix, size=224, preprocess=None, opset=None, atol=1e-5, keep_failed=False):
    """``PREFIX.onnx`` with a dynamic batch axis, checked with ``onnx.checker`` and ONNX Runtime.

    The model is exported at onnx's default opset unless that fails, in which case the opset is pinned to
    13 with :func:`pinned_onnx_opset` (or at ``opset`` if given). ONNX Runtime must match MXNet at batch 1
    and 3 within ``atol`` per unit of logit scale, i.e. ``max|diff| <= atol * max(1, max|logit|)``: both
    are float32 and differ from the exact (float64) logits by rounding that grows with the logits' size.
    The float64 MXNet logits are reported for reference.
    """
    import mxnet as mx
    import onnx
    t0 = time.time()
    rep = ExportReport('onnx', prefix)
    pp = preprocess or net.preprocess
    x = generated_images(3, size, pp, EVAL_SEED)
    finals = output_files('onnx', prefix)
    with _Staging(prefix) as st:
        _prepared(net, size)
        sym_prefix = st.staged_prefix + '.mxnet'
        net.export(sym_prefix)
        onnx_path = st.staged(finals[0])
        default = onnx.defs.onnx_opset_version()
        attempts = [opset] if opset else [None, FALLBACK_OPSET]
        errors = []
        for attempt in attempts:
            try:
                with (pinned_onnx_opset(attempt) if attempt else contextlib.nullcontext()):
                    model = _onnx_convert(sym_prefix, onnx_path, size)
                session = _ort_session(onnx_path)
                break
            except Exception as err:   # noqa: BLE001 - reported, then the next opset is tried
                errors.append('opset %s: %s: %s' % (attempt or default, type(err).__name__,
                                                    str(err).strip().splitlines()[-1] if str(err).strip() else ''))
        else:
            raise ExportError('ONNX export failed: ' + '; '.join(errors))
        used = model.opset_import[0].version
        if errors:
            rep.notes.append('the default opset failed (%s); exported with the opset pinned to %d'
                             % (errors[0], used))
        rep.lines.append('opset     %d (%s)' % (used, 'requested' if opset else
                                                 'onnx default, no workaround needed' if not errors else
                                                 'pinned: mx2onnx translates up to opset 13'))
        rep.lines.append('ops       ' + ', '.join(sorted({n.op_type for n in model.graph.node})))
        rep.check('onnx.checker (full check)', True)
        input_name = session.get_inputs()[0].name
        fp64 = mx.gluon.SymbolBlock.imports(sym_prefix + '-symbol.json', ['data'], sym_prefix + '-0000.params',
                                            ctx=mx.cpu())
        fp64.cast('float64')
        worst = 0.0
        for b in (1, 3):
            xb = x[:b]
            ref = _run(net, xb, b)
            got = session.run(None, {input_name: xb})[0]
            exact = fp64(mx.nd.array(xb, dtype='float64')).asnumpy()
            diff = float(np.abs(got - ref).max())
            scale = float(np.abs(ref).max())
            tol = atol * max(1.0, scale)
            rep.figures['batch%d' % b] = dict(max_abs_diff=diff, logit_scale=scale, tolerance=tol,
                                               ort_vs_fp64=float(np.abs(got - exact).max()),
                                               mxnet_vs_fp64=float(np.abs(ref - exact).max()),
                                               shape=list(got.shape))
            rep.lines.append('runtime   batch %d: ONNX Runtime vs MXNet max|diff| %.2e = %.1e x logit scale %.1f '
                             '(allowed %.0e x max(1, scale) = %.1e); distance to the float64 logits: ONNX Runtime '
                             '%.1e, MXNet fp32 %.1e'
                             % (b, diff, diff / max(scale, 1e-30), scale, atol, tol, np.abs(got - exact).max(),
                                np.abs(ref - exact).max()))
            rep.check('ONNX Runtime output shape at batch %d' % b, got.shape == ref.shape)
            rep.check('ONNX Runtime matches MXNet at batch %d' % b, diff <= tol)
            worst = max(worst, diff)
        rep.figures.update(opset=used, max_abs_diff=worst)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def export_fast(net, prefix, size=224, preprocess=None, num_eval=16, keep_failed=False):
    """The fast fp32 inference graph of :func:`rexnet_gluon.fast.prepare` (BN folded, oneDNN-fused), exported
    already partitioned: ``SymbolBlock.imports`` runs it as it is, on any MKLDNN build of MXNet (the pip wheels).

    The graph takes **one image per call**, (1, 3, size, size) (its SE gate is a BatchNorm whose scale is the
    image's gate); loop over a batch. Check: reloaded, on ``num_eval`` held-out generated images, the logits
    equal the plain network's within the parity rule (:func:`rexnet_gluon.parity.allowed_diff`) with the same
    top-1. For its speed set :data:`rexnet_gluon.fast.RECOMMENDED_ENV` where it runs.
    """
    from . import fast
    from ..convert.parity import allowed_diff
    t0 = time.time()
    rep = ExportReport('fast', prefix)
    held = generated_images(num_eval, size, preprocess or net.preprocess, EVAL_SEED)
    finals = output_files('fast', prefix)
    with _Staging(prefix) as st:
        _prepared(net, size)
        ref = _run(net, held, num_eval)
        try:
            fnet = fast.prepare(net, example=(1, 3, size, size))
            fnet.export(st.staged_prefix)
        except Exception as err:
            raise ExportError('fast graph failed: %s' % str(err).strip().splitlines()[-1]) from err
        ops = Counter(n['op'] for n in _graph_nodes(st.staged_prefix + '-symbol.json'))
        out = _run(_imports(st.staged_prefix), held, 1)
        diff = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        tol = allowed_diff(scale)
        agree = _top1_agreement(out, ref)
        rep.figures.update(max_abs_diff=diff, logit_scale=scale, tolerance=tol, top1_agreement=agree,
                           held_out=len(held), fused_convs=ops.get('_sg_mkldnn_conv', 0))
        rep.lines.append('graph     %d oneDNN fused convolutions, %d ops in all; input (1, 3, %d, %d): one image per '
                         'call' % (ops.get('_sg_mkldnn_conv', 0), sum(ops.values()), size, size))
        rep.lines.append('reload    vs the plain network on %d held-out generated images: max|diff| %.2e at logit '
                         'scale %.1f (allowed %.1e), top-1 agreement %.0f %%' % (len(held), diff, scale, tol,
                                                                                 100 * agree))
        rep.check('reloaded fast graph equals the network within the parity rule', diff <= tol)
        rep.check('same top-1 on every image', agree == 1.0)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def _graph_nodes(symbol_json):
    """The operator nodes (not the variables) of an exported ``-symbol.json``."""
    with open(symbol_json) as f:
        return [n for n in json.load(f)['nodes'] if n['op'] != 'null']


def _int8_graph_stats(symbol_json):
    nodes = _graph_nodes(symbol_json)
    ops = Counter(n['op'] for n in nodes)
    int8 = sum(c for op, c in ops.items() if op.startswith('_contrib_quantized'))
    int8 += sum(1 for n in nodes if n['op'] == '_sg_mkldnn_conv' and
                str(n.get('attrs', {}).get('quantized', '')).lower() == 'true')
    conv = ops.get('_sg_mkldnn_conv', 0)
    return ops, int8, conv


def export_int8(net, prefix, size=224, preprocess=None, calib_data=None, num_calib=64, num_eval=200, batch=16,
                quantize_mode='full', exclude_operators=INT8_FP32_OPS, min_agreement=0.99, keep_failed=False,
                eval_data=None):
    """oneDNN INT8 graph by post-training quantization (naive min/max calibration), CPU only.

    ``calib_data``: preprocessed calibration images (N, 3, size, size) as numpy; default: ``num_calib``
    generated images (seed ``CALIB_SEED``). The check is the top-1 agreement of the exported INT8 graph with
    the fp32 net on ``num_eval`` held-out images, ``eval_data`` (preprocessed, numpy; never the calibration
    images) or generated ones (seed ``EVAL_SEED``): at least ``min_agreement``.
    What works in MXNet 1.9.1 for ReXNet: ``quantized_dtype='int8'`` ('auto' calibrates, then fails at
    inference with "data type do not match ... Expected: unsigned char v.s. given char"), with
    ``quantize_mode`` 'full' or 'smart' (the same graph here, except that 'smart' leaves the final Flatten
    in fp32). The SE/Swish sigmoids stay fp32 (oneDNN quantizes only ReLU activations); convolutions are fused
    with their BN (and ReLU6 clip where there is no SE) into ``_sg_mkldnn_conv``; the shortcut additions and
    the global pools run as quantized ops. ``exclude_operators``: op names of that fused graph to keep in fp32;
    by default the Swish products (``elemwise_mul``): quantizing them costs most of the error (a ReXNet-1.0x
    trained on tests/datasets.py shapes, 1000 held-out images: top-1 agreement 94.9 % and logit cosine 0.975
    with them quantized, 99.3-99.5 % and 0.9987 without; per-channel weight scales and more calibration images
    changed nothing).
    """
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net
    t0 = time.time()
    rep = ExportReport('int8', prefix)
    pp = preprocess or net.preprocess
    if calib_data is None:
        calib = generated_images(num_calib, size, pp, CALIB_SEED)
    else:
        calib = np.asarray(calib_data, np.float32)[:num_calib]
    if len(calib) == 0:
        raise ExportError('no calibration images')
    cb = min(batch, len(calib))
    calib = calib[:len(calib) // cb * cb]   # whole batches only: the calibration module has a fixed shape
    if calib_data is None:
        rep.lines.append('calibrate %d generated images (smooth random, seed %d; no --calib-dir), naive min/max, '
                         'quantize_mode %r' % (len(calib), CALIB_SEED, quantize_mode))
    else:
        rep.lines.append('calibrate %d images from the calibration set, naive min/max, quantize_mode %r'
                         % (len(calib), quantize_mode))
    held, held_desc = _held_out(eval_data, num_eval, size, pp)
    finals = output_files('int8', prefix)
    with _Staging(prefix) as st:
        _prepared(net, size)
        ref = _run(net, held, batch)
        loader = mx.gluon.data.DataLoader(
            mx.gluon.data.ArrayDataset(mx.nd.array(calib), mx.nd.zeros(len(calib))), batch_size=cb,
            last_batch='discard')
        try:
            with _native_log_captured(), warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='WARNING: This will be deprecated after MXNet 2.0')
                qnet = quantize_net(net, quantized_dtype='int8', quantize_mode=quantize_mode, calib_mode='naive',
                                    calib_data=loader, num_calib_examples=len(calib), ctx=mx.cpu(),
                                    exclude_operators=list(exclude_operators or ()))
                qnet.hybridize()
                in_memory = _run(qnet, held[:batch], batch)
                qnet.export(st.staged_prefix)
        except Exception as err:   # MXNet errors carry a C++ backtrace; keep the message
            raise ExportError('INT8 quantization failed: %s' % str(err).strip().splitlines()[-1]) from err
        with _native_log_captured():
            loaded = _imports(st.staged_prefix)
            out = _run(loaded, held, batch)
        reload_diff = float(np.abs(out[:batch] - in_memory).max())
        agree = _top1_agreement(out, ref)
        ops, n_int8, n_conv = _int8_graph_stats(st.staged_prefix + '-symbol.json')
        rep.figures.update(top1_agreement=agree, cosine=_mean_cosine(out, ref),
                           max_abs_diff=float(np.abs(out - ref).max()), logit_scale=float(np.abs(ref).max()),
                           held_out=len(held), calib=len(calib), reload_max_abs_diff=reload_diff,
                           int8_ops=n_int8, finite=bool(np.isfinite(out).all()))
        rep.lines.append('graph     %d INT8 ops (%d oneDNN fused convolutions), %d quantize / %d dequantize nodes%s'
                         % (n_int8, n_conv, ops.get('_contrib_quantize_v2', 0), ops.get('_contrib_dequantize', 0),
                            '; kept in fp32: ' + ', '.join(exclude_operators) if exclude_operators else ''))
        rep.lines.append('reload    exported INT8 graph vs the quantized net in memory: max|diff| %.3g' % reload_diff)
        rep.lines.append('accuracy  top-1 agreement with fp32 on %d %s: %.1f %% '
                         '(%d/%d); mean logit cosine %.4f; max|diff| %.3g at logit scale %.1f'
                         % (len(held), held_desc, 100 * agree, int(round(agree * len(held))), len(held),
                            rep.figures['cosine'], rep.figures['max_abs_diff'], rep.figures['logit_scale']))
        rep.check('INT8 graph holds quantized ops', n_int8 > 0)
        rep.check('INT8 outputs finite', rep.figures['finite'])
        rep.check('top-1 agreement %.1f %% >= %.1f %%' % (100 * agree, 100 * min_agreement), agree >= min_agreement)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def export_bf16(net, prefix, size=224, preprocess=None, num_eval=200, batch=16, min_agreement=0.9,
                keep_failed=False, eval_data=None):
    """bfloat16 graph from ``amp.convert_hybrid_block`` (CPU), weights stored in bfloat16.

    Exported with ``remove_amp_cast=False``: ``HybridBlock.export`` strips AMP casts by default and would
    silently write an fp32 graph. Checks: finite outputs and top-1 agreement >= ``min_agreement`` with fp32
    on held-out images (``eval_data``, else generated); the maximum relative logit difference
    (max|diff| / max|fp32 logit|) is reported.
    """
    import mxnet as mx
    from mxnet.contrib import amp
    t0 = time.time()
    rep = ExportReport('bf16', prefix)
    held, held_desc = _held_out(eval_data, num_eval, size, preprocess or net.preprocess)
    finals = output_files('bf16', prefix)
    with _Staging(prefix) as st:
        _prepared(net, size)
        ref = _run(net, held, batch)
        try:
            bnet = amp.convert_hybrid_block(net, target_dtype='bfloat16', ctx=mx.cpu(), cast_optional_params=True)
            in_memory = _run(bnet, held[:batch], batch)
            bnet.export(st.staged_prefix, remove_amp_cast=False)
        except Exception as err:
            raise ExportError('bfloat16 conversion failed: %s' % str(err).strip().splitlines()[-1]) from err
        out = _run(_imports(st.staged_prefix), held, batch)
        reload_diff = float(np.abs(out[:batch] - in_memory).max())
        casts = sum(1 for n in _graph_nodes(st.staged_prefix + '-symbol.json')
                    if n['op'] in ('amp_cast', 'amp_multicast'))
        scale = float(np.abs(ref).max())
        diff = float(np.abs(out - ref).max())
        agree = _top1_agreement(out, ref)
        rep.figures.update(top1_agreement=agree, max_rel_diff=diff / max(scale, 1e-30), max_abs_diff=diff,
                           logit_scale=scale, cosine=_mean_cosine(out, ref), held_out=len(held),
                           reload_max_abs_diff=reload_diff, amp_casts=casts, finite=bool(np.isfinite(out).all()))
        rep.lines.append('graph     %d amp_cast nodes; weights stored as bfloat16 where the op allows' % casts)
        rep.lines.append('reload    exported graph vs the converted net in memory: max|diff| %.3g' % reload_diff)
        rep.lines.append('accuracy  on %d %s: max relative logit diff %.2e (max|diff| %.3g '
                         'at logit scale %.1f), mean cosine %.5f, top-1 agreement %.1f %%'
                         % (len(held), held_desc, rep.figures['max_rel_diff'], diff, scale, rep.figures['cosine'],
                            100 * agree))
        rep.check('graph computes in bfloat16 (amp_cast nodes kept)', casts > 0)
        rep.check('bfloat16 outputs finite', rep.figures['finite'])
        rep.check('top-1 agreement %.1f %% >= %.1f %%' % (100 * agree, 100 * min_agreement), agree >= min_agreement)
        if rep.ok or keep_failed:
            rep.files = st.publish(finals)
    rep.seconds = time.time() - t0
    return rep


def export_model(net, fmt, prefix, size=None, **kwargs):
    """Dispatch to ``export_<fmt>``; ``size`` defaults to the net's evaluation input size."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError('unknown format %r; choose from %s' % (fmt, ', '.join(FORMATS)))
    size = size or net.preprocess['input_size']
    fn = {'symbol': export_symbol, 'onnx': export_onnx, 'int8': export_int8, 'bf16': export_bf16,
          'fast': export_fast}[fmt]
    return fn(net, prefix, size=size, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Command line

HANDLED_ERRORS = (ImageLoadError,)


def _formats(text):
    out = []
    for part in re.split(r'[,\s]+', text.strip().lower()):
        if not part:
            continue
        if part not in FORMATS:
            raise argparse.ArgumentTypeError('unknown format %r; choose from %s' % (part, ', '.join(FORMATS)))
        out.append(part)
    if not out:
        raise argparse.ArgumentTypeError('give at least one format: %s' % ', '.join(FORMATS))
    return out


def _fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError('%s is not a fraction in [0, 1]' % text)
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError('%s is not a positive integer' % text)
    return value


def add_arguments(p):
    p.add_argument('--model', required=True, metavar='NAME', help='zoo name, e.g. rexnet_1.0x')
    weights = p.add_mutually_exclusive_group()
    weights.add_argument('--pretrained', action='store_true',
                         help='the published weights, fetched and converted once, then cached (the default)')
    weights.add_argument('--params', metavar='FILE',
                         help='local weights: a converted Gluon .params or a PyTorch .pth / .safetensors')
    p.add_argument('--format', required=True, type=_formats, action='append', metavar='FMT',
                   help='%s; repeat it or separate with commas for several' % ' | '.join(FORMATS))
    p.add_argument('--output', metavar='PREFIX',
                   help='output prefix (default: the model name). With several formats, int8 and bf16 add '
                        '-int8 / -bf16 / -fast to it (their files would collide otherwise); alone, a format '
                        'uses PREFIX as given')
    p.add_argument('--input-size', type=_positive, metavar='N',
                   help='square input size to export and verify at (default: the model\'s, e.g. 224)')
    p.add_argument('--calib-dir', metavar='DIR',
                   help='int8: calibration images (read with the model\'s preprocessing); default: generated')
    p.add_argument('--num-calib', type=_positive, default=64, metavar='N',
                   help='int8: number of calibration images (default 64)')
    p.add_argument('--eval-dir', metavar='DIR',
                   help='int8/bf16: held-out images for the top-1 agreement check (never used for calibration); '
                        'default: generated')
    p.add_argument('--num-eval', type=_positive, default=200, metavar='N',
                   help='int8/bf16/fast: number of held-out images for the agreement check (default 200)')
    p.add_argument('--batch', type=_positive, default=16, metavar='B',
                   help='batch size for calibration and verification runs (default 16)')
    p.add_argument('--quantize-mode', choices=('full', 'smart'), default='full',
                   help='int8: quantize every supported op (full, default) or let MXNet choose (smart)')
    p.add_argument('--int8-exclude-ops', type=lambda t: [o for o in re.split(r'[,\s]+', t) if o and o != 'none'],
                   default=list(INT8_FP32_OPS), metavar='OPS',
                   help='int8: comma-separated ops of the oneDNN graph to keep in fp32 (default %s: the Swish '
                        'products; "none" quantizes everything)' % ','.join(INT8_FP32_OPS))
    p.add_argument('--int8-min-agreement', type=_fraction, default=0.99, metavar='F',
                   help='int8: required top-1 agreement with fp32 (default 0.99)')
    p.add_argument('--bf16-min-agreement', type=_fraction, default=0.9, metavar='F',
                   help='bf16: required top-1 agreement with fp32 (default 0.9)')
    p.add_argument('--opset', type=int, metavar='N',
                   help='onnx: pin this opset (default: onnx\'s newest, falling back to 13 if that fails)')
    p.add_argument('--onnx-tol', type=float, default=1e-5, metavar='T',
                   help='onnx: allowed max|ORT - MXNet| per unit of logit scale (default 1e-5)')
    p.add_argument('--keep-failed', action='store_true',
                   help='publish the files of a format even if its check failed (the exit status is still 1)')
    return p


def _prefixes(formats, output, model):
    base = output or model
    if len(formats) == 1 and output:
        return {formats[0]: base}
    return {f: base + ('-' + f if f in ('int8', 'bf16', 'fast') else '') for f in formats}


def run(args):
    """Run the export command; returns 0 if every check passed, 1 otherwise."""
    from .predict import check_model_name, load_model
    formats = list(dict.fromkeys(f for group in args.format for f in group))
    info = check_model_name(args.model)
    if args.params is not None and not os.path.isfile(args.params):
        raise UsageError('--params %s: no such file' % args.params)
    size = args.input_size or info.input_size
    pp = preprocess_for_size(info.preprocess, size)
    calib = None
    if 'int8' in formats and args.calib_dir:
        calib = calibration_images(args.calib_dir, pp, args.num_calib)
    elif args.calib_dir:
        raise UsageError('--calib-dir is only used by --format int8')
    held = None
    if args.eval_dir and ('int8' in formats or 'bf16' in formats):
        held = calibration_images(args.eval_dir, pp, args.num_eval, flag='--eval-dir')
        if args.calib_dir and os.path.realpath(args.eval_dir) == os.path.realpath(args.calib_dir):
            raise UsageError('--eval-dir and --calib-dir are the same folder: the agreement check needs images '
                             'the calibration did not see')
    elif args.eval_dir:
        raise UsageError('--eval-dir is only used by --format int8 and bf16')
    import mxnet as mx
    net = load_model(info.name, args.params, mx.cpu())
    prefixes = _prefixes(formats, args.output, info.name)
    print('%s (%s), input 1x3x%dx%d' % (info.name, args.params or 'published weights', size, size))
    status = 0
    for fmt in formats:
        kw = dict(preprocess=pp, keep_failed=args.keep_failed)
        if fmt == 'symbol':
            kw.update(batch=args.batch)
        elif fmt == 'onnx':
            kw.update(opset=args.opset, atol=args.onnx_tol)
        elif fmt == 'int8':
            kw.update(calib_data=calib, num_calib=args.num_calib, num_eval=args.num_eval, batch=args.batch,
                      quantize_mode=args.quantize_mode, min_agreement=args.int8_min_agreement,
                      exclude_operators=args.int8_exclude_ops, eval_data=held)
        elif fmt == 'bf16':
            kw.update(num_eval=args.num_eval, batch=args.batch, min_agreement=args.bf16_min_agreement,
                      eval_data=held)
        else:
            kw.update(num_eval=args.num_eval)
        try:
            rep = export_model(net, fmt, prefixes[fmt], size=size, **kw)
        except (ExportError, OSError) as err:
            print('\n[%s] ERROR  %s\n  wrote     nothing' % (fmt, err))
            status = 1
            continue
        print('\n' + rep.summary())
        if not rep.ok:
            status = 1
    print('\n%s' % ('all checks passed' if status == 0 else 'some checks FAILED'))
    return status


