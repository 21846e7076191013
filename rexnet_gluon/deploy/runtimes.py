"""Inference engines: one network, four runtimes, one interface (float32 NCHW numpy batch -> float32 logits).

- ``mxnet``: the plain network, hybridized, on any context (``mx.gpu(i)`` included). The reference of the others.
- ``fast``: :func:`rexnet_gluon.deploy.fast.prepare` (CPU, oneDNN); it runs one image per graph call and loops over
  the batch itself. Its speed needs :data:`~rexnet_gluon.deploy.fast.RECOMMENDED_ENV` set before ``import mxnet``;
  the engine cannot set it afterwards, so it says so in its notes when it was not.
- ``openvino``: the network's ONNX export (:func:`~rexnet_gluon.deploy.export.onnx_format.staged_onnx`, kept in
  the engine cache, :mod:`~rexnet_gluon.deploy.engine_cache`) converted in memory by ``ov.convert_model`` and run by
  :class:`~rexnet_gluon.deploy.openvino_runner.OpenVinoRunner`: CPU, ``INFERENCE_PRECISION_HINT`` f32 (the CPU
  plugin's default on CPUs with bf16 support is bf16: ~0.8 off in logits), static shapes for recurring batch sizes.
- ``onnxruntime``: the same (cached) ONNX file in an ``InferenceSession`` with the ``CPUExecutionProvider``.

Every engine takes any batch size (the ONNX/IR batch axis is dynamic). :func:`check_engine` compares an engine with
the plain network on generated images at batch 1 and 3 within the parity rule
(:func:`rexnet_gluon.convert.parity.allowed_diff`; the fast path within
:data:`~rexnet_gluon.deploy.export.mxnet_formats.FAST_TOLERANCE` times it: two fp32 graphs that round differently).
:func:`choose_engine` builds and checks engines in the order of measured speed on this project's CPU.
"""
import logging
import os

import numpy as np

from ..convert.parity import allowed_diff

__all__ = ['RUNTIMES', 'AUTO_ORDER', 'INSTALL_HINT', 'Engine', 'RuntimeUnavailable', 'ParityFailure', 'build_engine',
           'check_engine', 'choose_engine', 'CHECK_BATCHES']

log = logging.getLogger(__name__)

RUNTIMES = ('mxnet', 'fast', 'openvino', 'onnxruntime')
# Fastest first, measured on this project's 2-vCPU machines (ReXNet-1.0x, 224 px, scripts/benchmark.py, README
# "Speed"): OpenVINO is first in every run (3.45-4.56x / 5.25-6.07x timm channels_last at batch 1 / 32 on an AMD EPYC,
# 2026-12-06/07; 2.96x / 3.15x on an Intel Xeon, 2026-12-04); ONNX Runtime and fast are close and trade places between
# runs (fast 0.91-1.10x / 1.05-1.18x ONNX Runtime on the AMD EPYC, 0.83x / 0.94x on the Intel Xeon).
AUTO_ORDER = ('openvino', 'onnxruntime', 'fast', 'mxnet')
INSTALL_HINT = 'pip install -e .[export]'
CHECK_BATCHES = (1, 3)


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run here: its package is missing, or it cannot run on the requested context."""


class ParityFailure(RuntimeError):
    """The engine's logits are not the network's within its rule."""


class Engine:
    """``engine(x)``: logits (N, classes) float32 numpy of a float32 (N, 3, H, W) numpy batch.

    ``name``: the runtime; ``tolerance_factor``: its parity rule in units of ``allowed_diff``; ``notes``: what a user
    should know about how it runs (e.g. a missing environment variable)."""
    tolerance_factor = 1.0

    def __init__(self, name, run, notes=()):
        self.name = name
        self._run = run
        self.notes = list(notes)

    def __call__(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(self._run(x), dtype=np.float32)

    def __repr__(self):
        return 'Engine(%r)' % self.name


def _mxnet_runner(block, ctx):
    import mxnet as mx

    def run(x):
        return block(mx.nd.array(x, ctx=ctx, dtype='float32')).astype('float32').asnumpy()
    return run


def _is_gpu(ctx):
    return ctx is not None and ctx.device_type == 'gpu'


def _mxnet(net, size, ctx):
    import mxnet as mx
    net.hybridize(static_alloc=True, static_shape=True)
    return Engine('mxnet', _mxnet_runner(net, ctx or mx.cpu()))


def _fast_env_notes():
    from . import fast
    missing = ['%s=%s (now %s)' % (k, want, now) for k, (now, want) in fast.env_report().items() if now != want]
    if not missing:
        return []
    return ['fast.RECOMMENDED_ENV was not set before mxnet was imported (%s): the fast path runs, but slower '
            '(63 vs 143 img/s at batch 1 without NaiveEngine, measured); set them in the shell to get its speed'
            % ', '.join(missing)]


def _fast(net, size, ctx):
    import mxnet as mx
    from . import fast
    from .export.mxnet_formats import FAST_TOLERANCE
    fnet = fast.prepare(net, example=(1, 3, size, size))
    engine = Engine('fast', _mxnet_runner(fnet, mx.cpu()), _fast_env_notes())
    engine.tolerance_factor = FAST_TOLERANCE
    return engine


def _import(module, runtime):
    import importlib
    try:
        importlib.import_module('onnx')   # the ONNX export both runtimes start from
        return importlib.import_module(module)
    except ImportError as err:
        raise RuntimeUnavailable('runtime %r needs %s and onnx (%s); install them with: %s'
                                 % (runtime, module, err, INSTALL_HINT)) from None


def _from_cache_note(path, hit):
    return ('the ONNX export %s %s' % ('cached at' if hit else 'made now', path) if os.path.exists(path) else
            'the ONNX export made now (not cached)')


def _openvino(net, size, ctx):
    from .engine_cache import cached_onnx
    from .export.openvino_format import CHECK_PRECISION, set_batch
    from .openvino_runner import OpenVinoRunner, cpu_config
    ov = _import('openvino', 'openvino')
    model, path, hit = cached_onnx(net, size, ov.convert_model)
    run = OpenVinoRunner(set_batch(model, size), cpu_config(CHECK_PRECISION))
    return Engine('openvino', run, ['OpenVINO %s, CPU, f32 (INFERENCE_PRECISION_HINT), LATENCY hint; a batch size '
                                    'that comes again runs a model compiled for it (static shape)'
                                    % ov.get_version(), _from_cache_note(path, hit)])


def _onnxruntime(net, size, ctx):
    from .engine_cache import cached_onnx
    ort = _import('onnxruntime', 'onnxruntime')

    def session(path):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    sess, path, hit = cached_onnx(net, size, session)
    name = sess.get_inputs()[0].name
    return Engine('onnxruntime', lambda x: sess.run(None, {name: x})[0],
                  ['ONNX Runtime %s, CPUExecutionProvider' % ort.__version__, _from_cache_note(path, hit)])


_BUILDERS = {'mxnet': _mxnet, 'fast': _fast, 'openvino': _openvino, 'onnxruntime': _onnxruntime}


def build_engine(runtime, net, size, ctx=None):
    """The ``runtime`` engine of ``net`` (a ReXNet, ``size`` px inputs) on ``ctx`` (default CPU). Only ``mxnet``
    runs on a GPU context; the others raise :class:`RuntimeUnavailable` there, and when their package is missing.
    Building ``openvino`` / ``onnxruntime`` costs one ONNX export (seconds) the first time a network is seen, and
    reading the cached file afterwards (:mod:`~rexnet_gluon.deploy.engine_cache`); ``fast``, folding and
    partitioning."""
    if runtime not in _BUILDERS:
        raise ValueError('unknown runtime %r; choose from auto, %s' % (runtime, ', '.join(RUNTIMES)))
    if runtime != 'mxnet' and _is_gpu(ctx):
        raise RuntimeUnavailable('runtime %r runs on the CPU only; use runtime mxnet for %s' % (runtime, ctx))
    return _BUILDERS[runtime](net, size, ctx)


def check_engine(engine, reference, size, preprocess, batches=CHECK_BATCHES):
    """Compare ``engine`` with ``reference`` (the plain network's mxnet engine) on generated images at each batch
    size: max|diff| <= ``engine.tolerance_factor`` x :func:`allowed_diff` (logit scale). Returns (ok, text)."""
    from .export.data import EVAL_SEED, generated_images
    x = generated_images(max(batches), size, preprocess, EVAL_SEED)
    ok, parts = True, []
    for b in batches:
        ref, got = reference(x[:b]), engine(x[:b])
        if got.shape != ref.shape:
            return False, 'batch %d: output shape %s, the network\'s %s' % (b, got.shape, ref.shape)
        diff, scale = float(np.abs(got - ref).max()), float(np.abs(ref).max())
        tol = engine.tolerance_factor * allowed_diff(scale)
        ok = ok and diff <= tol
        parts.append('batch %d max|diff| %.1e (allowed %.1e at logit scale %.1f)' % (b, diff, tol, scale))
    return ok, '; '.join(parts)


def _try(runtime, net, size, ctx, reference, preprocess):
    """(engine or None, why): built and checked, or the reason it was not usable."""
    try:
        engine = build_engine(runtime, net, size, ctx)
    except RuntimeUnavailable as err:
        return None, str(err)
    except Exception as err:   # noqa: BLE001 - auto moves on to the next runtime and says why
        lines = str(err).strip().splitlines()
        return None, 'could not be built (%s: %s)' % (type(err).__name__, lines[-1] if lines else '')
    ok, text = check_engine(engine, reference, size, preprocess)
    return (engine, 'parity check passed: ' + text) if ok else (None, 'parity check FAILED: ' + text)


def choose_engine(runtime, net, size, preprocess, ctx=None):
    """(engine, log lines). ``runtime='auto'``: on a GPU context ``mxnet``; on the CPU the first of
    :data:`AUTO_ORDER` that builds and passes :func:`check_engine` (each skipped one is logged at INFO with the
    reason). An explicit runtime must build and pass its check, else :class:`RuntimeUnavailable` /
    :class:`ParityFailure`. ``mxnet`` is the reference and is not checked."""
    reference = build_engine('mxnet', net, size, ctx)
    if runtime == 'mxnet' or (runtime == 'auto' and _is_gpu(ctx)):
        why = 'the plain network (the reference)' + ('; auto on a GPU context' if runtime == 'auto' else '')
        return reference, ['mxnet: %s' % why]
    if runtime != 'auto':
        engine = build_engine(runtime, net, size, ctx)
        ok, text = check_engine(engine, reference, size, preprocess)
        if not ok:
            raise ParityFailure('runtime %r does not reproduce the network: %s' % (runtime, text))
        return engine, ['%s: parity check passed: %s' % (runtime, text)]
    lines = []
    for name in AUTO_ORDER:
        engine, why = (reference, 'the plain network (the reference)') if name == 'mxnet' else \
            _try(name, net, size, ctx, reference, preprocess)
        lines.append('%s: %s' % (name, why if engine else 'skipped, ' + why))
        log.info('runtime auto: %s', lines[-1])
        if engine is not None:
            return engine, lines
    raise AssertionError('unreachable: mxnet is always usable')
