"""Deployment exports (rexnet_gluon/deploy/export/, scripts/export.py): symbol, ONNX, OpenVINO, INT8, bfloat16, fast,
atomic writes.

The network is ReXNet 1.0x with seeded random weights and non-trivial BN statistics (a randomized PyTorch
reference, saved and converted), at 64x64 input to keep the file fast on 2 cores.

Two figures differ from the original brief, on purpose and measured (see the test docstrings):
- ONNX: ONNX Runtime vs MXNet is ~4e-5 at logit scale ~12-15, so the tolerance is 1e-5 per unit of logit
  scale; MXNet's own fp32 logits are as far (2.6e-5 - 3.7e-5) from the float64 logits. OpenVINO (fp32 IR, run
  in f32) is as close: 4.1e-5 - 5.2e-5 measured (dynamic at batch 1 and 3, static at 2 and 4).
- INT8: with random weights the top-1 agreement is ~40 % (``test_random_net_top1_is_below_int8_resolution``
  shows why), so agreement is measured on a ReXNet-1.0x trained on the drawn-shapes data set (conftest.py),
  calibrated on training images and checked on 1000 held-out images: 97.2-99.5 % measured, 95 % asserted.
"""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')
onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

import mxnet as mx  # noqa: E402

import rexnet_gluon.deploy.export as ex  # noqa: E402
from rexnet_gluon.deploy.export import mxnet_formats, onnx_format, staging  # noqa: E402
from rexnet_gluon.zoo import get_model, get_model_list  # noqa: E402

from helpers import REPO, random_checkpoint  # noqa: E402
SIZE = 64
NUM_EVAL = 128   # held-out generated images for int8 / bf16


@pytest.fixture(scope='module')
def params_file(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp('weights'), seed=5)[1]


@pytest.fixture
def net(params_file):
    return get_model('rexnet_1.0x', pretrained=params_file)


def _pp(net):
    return ex.preprocess_for_size(net.preprocess, SIZE)


def _logits(block, x):
    return block(mx.nd.array(x, dtype=x.dtype)).asnumpy()


def _outputs(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------------------------------------------
# symbol


def test_symbol_export_reloads_identically(net, tmp_path):
    prefix = str(tmp_path / 'rexnet')
    rep = ex.export_symbol(net, prefix, size=SIZE, preprocess=_pp(net))
    assert rep.ok, rep.summary()
    assert rep.figures['max_abs_diff'] == 0.0 and rep.figures['logit_scale'] > 5
    assert rep.files == [prefix + '-symbol.json', prefix + '-0000.params']
    assert _outputs(tmp_path) == ['rexnet-0000.params', 'rexnet-symbol.json']   # no staging left behind
    # Independently: fresh inputs, another batch size, the reloaded graph equals the Gluon net bit for bit.
    x = ex.generated_images(5, SIZE, _pp(net), seed=42)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    assert np.array_equal(_logits(loaded, x), _logits(net, x))


# ---------------------------------------------------------------------------------------------------
# ONNX


def test_onnx_export_matches_mxnet_at_batch_1_and_3(net, tmp_path):
    """ONNX Runtime vs MXNet, fp32: measured ~4e-5 at logit scale ~12 (3.6e-6 relative). Both runtimes are
    that far from the float64 logits (MXNet fp32 2.6e-5 - 3.7e-5), so an absolute 1e-5 is below the fp32
    rounding of this net; the tolerance is 1e-5 x max(1, logit scale), and ONNX Runtime must be about as
    close to the exact logits as MXNet itself."""
    default_opset = onnx.defs.onnx_opset_version()
    prefix = str(tmp_path / 'rexnet')
    rep = ex.export_onnx(net, prefix, size=SIZE, preprocess=_pp(net))
    assert rep.ok, rep.summary()
    assert rep.files == [prefix + '.onnx'] and _outputs(tmp_path) == ['rexnet.onnx']
    assert onnx.defs.onnx_opset_version() == default_opset       # nothing left patched
    print('\n' + rep.summary())

    model = onnx.load(prefix + '.onnx')
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == default_opset        # GlobalAveragePool, Pad...: no pin needed
    ops = {n.op_type for n in model.graph.node}
    assert {'Conv', 'GlobalAveragePool', 'Pad', 'Sigmoid', 'Clip'} <= ops and 'ReduceMean' not in ops
    # every partial shortcut is one Pad of the channel axis; no shape computations left (onnx_rewrite)
    partial = sum(b.shortcut and b.out_channels > b.in_channels for b in net.spec.blocks)
    assert rep.figures['shortcut_pads_rewritten'] == partial == sum(n.op_type == 'Pad' for n in model.graph.node)
    assert not ops & {'Shape', 'Unsqueeze', 'Reshape'}, ops
    (inp,) = model.graph.input                                    # weights are initializers, not inputs
    dims = inp.type.tensor_type.shape.dim
    assert not dims[0].dim_value and [d.dim_value for d in dims[1:]] == [3, SIZE, SIZE]

    session = ort.InferenceSession(prefix + '.onnx', providers=['CPUExecutionProvider'])
    x = ex.generated_images(3, SIZE, _pp(net), seed=7)
    exact_net = mx.gluon.SymbolBlock.imports(*_symbol_files(net, tmp_path))
    exact_net.cast('float64')
    for b in (1, 3):
        ref = _logits(net, x[:b])
        got = session.run(None, {inp.name: x[:b]})[0]
        exact = exact_net(mx.nd.array(x[:b], dtype='float64')).asnumpy()
        scale = np.abs(ref).max()
        diff = np.abs(got - ref).max()
        assert got.shape == (b, 1000)
        assert diff <= 1e-5 * max(1.0, scale), (b, diff, scale)
        assert np.abs(got - exact).max() <= 3 * np.abs(ref - exact).max() + 1e-6
        assert (got.argmax(1) == ref.argmax(1)).all()


def _symbol_files(net, folder):
    prefix = str(folder / 'plain')
    net.export(prefix)
    return prefix + '-symbol.json', ['data'], prefix + '-0000.params'


def test_onnx_falls_back_to_opset_13(net, tmp_path, monkeypatch):
    """If the default opset fails (as F.mean -> ReduceMean does at opset >= 18), the export is retried with
    the opset pinned to 13, and onnx's functions are restored afterwards."""
    import onnx.checker
    real = onnx_format._onnx_convert
    seen = []

    def picky(sym_prefix, onnx_path, size):
        seen.append(onnx.defs.onnx_opset_version())
        if onnx.defs.onnx_opset_version() != 13:
            raise ValueError('Unrecognized attribute: axes for operator ReduceMean')
        return real(sym_prefix, onnx_path, size)

    default_opset, default_ctx = onnx.defs.onnx_opset_version(), onnx.checker.DEFAULT_CONTEXT.opset_imports
    monkeypatch.setattr(onnx_format, '_onnx_convert', picky)
    rep = ex.export_onnx(net, str(tmp_path / 'r'), size=SIZE, preprocess=_pp(net))
    assert rep.ok, rep.summary()
    assert seen == [default_opset, 13] and rep.figures['opset'] == 13
    assert any('pinned to 13' in n and 'ReduceMean' in n for n in rep.notes)
    assert onnx.load(str(tmp_path / 'r.onnx')).opset_import[0].version == 13
    assert onnx.defs.onnx_opset_version() == default_opset
    assert onnx.checker.DEFAULT_CONTEXT.opset_imports == default_ctx


# ---------------------------------------------------------------------------------------------------
# OpenVINO


def _ov_logits(compiled, x):
    return np.array(compiled(x)[0])


def test_openvino_dynamic_batch_matches_mxnet_at_batch_1_and_3(net, tmp_path):
    """PREFIX.xml + PREFIX.bin, nothing else; read back with a fresh Core: batch axis dynamic, weights fp32 (the
    .bin holds ~4 bytes per parameter), and in f32 it matches MXNet at batch 1, 2 and 3 within the ONNX rule. The
    report says the check ran in f32 whatever the CPU's default (bf16 on AMX / avx512_bf16 CPUs)."""
    ov = pytest.importorskip('openvino')
    prefix = str(tmp_path / 'rexnet')
    rep = ex.export_openvino(net, prefix, size=SIZE, preprocess=_pp(net))
    print('\n' + rep.summary())
    assert rep.ok, rep.summary()
    assert rep.files == [prefix + '.xml', prefix + '.bin'] and _outputs(tmp_path) == ['rexnet.bin', 'rexnet.xml']
    fig = rep.figures
    assert fig['batch'] == 'dynamic' and fig['inference_precision'] == 'f32' and 'f16' not in fig['weights']
    assert {'batch1', 'batch3'} <= set(fig) and fig['max_abs_diff'] <= 1e-5 * max(1.0, fig['batch1']['logit_scale'])
    n_params = sum(p.data().size for p in net.collect_params().values())
    assert os.path.getsize(prefix + '.bin') > 0.9 * 4 * n_params    # fp32 (BN folded: 0.99x); fp16 would be ~0.5x

    core = ov.Core()
    model = core.read_model(prefix + '.xml')
    shape = model.input(0).get_partial_shape()
    assert shape[0].is_dynamic and [shape[i].get_length() for i in (1, 2, 3)] == [3, SIZE, SIZE]
    compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    x = ex.generated_images(3, SIZE, _pp(net), seed=7)
    for b in (1, 2, 3):
        ref = _logits(net, x[:b])
        got = _ov_logits(compiled, x[:b])
        assert got.shape == (b, 1000)
        assert np.abs(got - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max()), (b, np.abs(got - ref).max())
        assert (got.argmax(1) == ref.argmax(1)).all()


def test_openvino_static_batch(net, tmp_path):
    """batch=N: the IR's input is static (N, 3, size, size), checked at N; another batch size is refused."""
    ov = pytest.importorskip('openvino')
    prefix = str(tmp_path / 'rexnet-b2')
    rep = ex.export_openvino(net, prefix, size=SIZE, preprocess=_pp(net), batch=2)
    print('\n' + rep.summary())
    assert rep.ok, rep.summary()
    assert rep.figures['batch'] == 2 and 'batch2' in rep.figures and 'batch1' not in rep.figures
    assert _outputs(tmp_path) == ['rexnet-b2.bin', 'rexnet-b2.xml']
    model = ov.Core().read_model(prefix + '.xml')
    assert model.input(0).get_partial_shape().is_static and list(model.input(0).get_shape()) == [2, 3, SIZE, SIZE]
    compiled = ov.Core().compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
    x = ex.generated_images(3, SIZE, _pp(net), seed=7)
    ref = _logits(net, x[:2])
    assert np.abs(_ov_logits(compiled, x[:2]) - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    with pytest.raises(RuntimeError):
        _ov_logits(compiled, x)


def test_openvino_missing_is_a_clear_error(params_file, tmp_path, monkeypatch, capsys):
    """Without openvino: the command says how to install it (exit 2, no traceback) before loading anything, and
    export_openvino raises ExportError; nothing is written."""
    from rexnet_gluon.__main__ import main
    monkeypatch.setitem(sys.modules, 'openvino', None)       # `import openvino` raises ImportError
    status = main(['export', '--model', 'rexnet_1.0x', '--params', params_file, '--format', 'onnx,openvino',
                   '--output', str(tmp_path / 'rexnet')])
    err = capsys.readouterr().err
    assert status == 2 and 'error: --format openvino needs OpenVINO' in err and 'pip install -e .[export]' in err
    with pytest.raises(ex.ExportError, match=r'pip install -e \.\[export\]'):
        ex.export_model(None, 'openvino', str(tmp_path / 'rexnet'), size=SIZE)
    assert _outputs(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# INT8


@pytest.fixture(scope='module')
def int8_export(params_file, tmp_path_factory):
    net = get_model('rexnet_1.0x', pretrained=params_file)
    prefix = str(tmp_path_factory.mktemp('int8') / 'rexnet-int8')
    rep = ex.export_int8(net, prefix, size=SIZE, preprocess=_pp(net), num_calib=32, num_eval=NUM_EVAL, batch=16,
                         keep_failed=True)
    print('\n' + rep.summary())
    return net, prefix, rep


def test_int8_export_artifacts(int8_export):
    net, prefix, rep = int8_export
    assert rep.files == [prefix + '-symbol.json', prefix + '-0000.params']
    assert rep.figures['held_out'] == NUM_EVAL >= 100 and rep.figures['calib'] == 32
    assert rep.figures['finite'] and rep.figures['int8_ops'] > 50 and rep.figures['reload_max_abs_diff'] == 0
    assert any('top-1 agreement' in desc for desc, _ in rep.checks)
    assert rep.ok == (rep.figures['top1_agreement'] >= 0.99)
    with open(prefix + '-symbol.json') as f:
        ops = {n['op'] for n in json.load(f)['nodes']}
    assert {'_contrib_quantize_v2', '_sg_mkldnn_conv', '_contrib_quantized_elemwise_add'} <= ops
    # The exported graph reproduces the agreement the report gives (held-out set, seed EVAL_SEED).
    held = ex.generated_images(NUM_EVAL, SIZE, _pp(net), ex.EVAL_SEED)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    q = np.concatenate([_logits(loaded, held[i:i + 32]) for i in range(0, NUM_EVAL, 32)])
    f = np.concatenate([_logits(net, held[i:i + 32]) for i in range(0, NUM_EVAL, 32)])
    assert np.mean(q.argmax(1) == f.argmax(1)) == pytest.approx(rep.figures['top1_agreement'])
    assert rep.figures['cosine'] > 0.8


def test_int8_agreement_on_a_trained_network(trained_shapes, tmp_path):
    """INT8 top-1 agreement with fp32 where it means something, through the CLI: a trained 4-class ReXNet-1.0x
    (its .params from train_imagenet.py: the class count is read from the file), calibrated on 64 training
    images, checked on 1000 held-out images (--eval-dir).

    Measured on two trained nets (val error 0.05: the one trained here, and 0.15: trained with Swish as
    oneDNN's sigmoid): 99.5 % and 97.2 % (94.9 % and lower when the Swish
    products are quantized as well; entropy or percentile calibration and per-channel scales did not help).
    So the issue's 99 % holds for one net and not the other; the check here is 95 %, which a broken INT8
    graph (~25-60 %) cannot pass, and the figure is printed.
    """
    t = trained_shapes
    val_error = float(t['log'][-1].split(',')[6])
    assert val_error < 0.3, 'the stand-in network did not train (chance: 0.75): %s' % t['log'][-1]
    proc = _script('--model', 'rexnet_1.0x', '--params', t['params'], '--format', 'int8', '--input-size',
                   str(t['size']), '--calib-dir', t['train'], '--num-calib', '64', '--eval-dir', t['val'],
                   '--num-eval', '1000', '--int8-min-agreement', '0.95', '--output', 'q/shapes-int8',
                   cwd=str(tmp_path))
    print('trained net: val top-1 error %.3f\n%s' % (val_error, proc.stdout))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r'top-1 agreement with fp32 on 1000 held-out images: ([\d.]+) %', proc.stdout)
    assert m and float(m.group(1)) >= 95.0, proc.stdout
    assert 'kept in fp32: elemwise_mul' in proc.stdout and '[int8] PASS' in proc.stdout
    prefix = str(tmp_path / 'q' / 'shapes-int8')
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    assert loaded(mx.nd.zeros((2, 3, t['size'], t['size']))).shape == (2, 4)


def test_random_net_top1_is_below_int8_resolution(net):
    """Why 99 % is out of reach with random weights: the fp32 net's top-1 already changes on a large share of
    the held-out images when only the INPUT is rounded to the int8 grid the calibrated first quantize op
    uses, so no INT8 graph (which must quantize its input) can agree on 99 %."""
    pp = _pp(net)
    held = ex.generated_images(NUM_EVAL, SIZE, pp, ex.EVAL_SEED)
    step = np.abs(ex.generated_images(32, SIZE, pp, ex.CALIB_SEED)).max() / 127
    rounded = (np.round(held / step) * step).astype(np.float32)
    agree = np.mean(_logits(net, held).argmax(1) == _logits(net, rounded).argmax(1))
    print('\nfp32 top-1 agreement after rounding only the input to the int8 grid: %.3f' % agree)
    assert agree < 0.99


# ---------------------------------------------------------------------------------------------------
# bfloat16


def test_bf16_export(net, tmp_path):
    prefix = str(tmp_path / 'rexnet-bf16')
    rep = ex.export_bf16(net, prefix, size=SIZE, preprocess=_pp(net), num_eval=NUM_EVAL, batch=32)
    print('\n' + rep.summary())
    assert rep.ok, rep.summary()
    fig = rep.figures
    assert fig['finite'] and fig['top1_agreement'] >= 0.9 and fig['reload_max_abs_diff'] == 0
    assert fig['amp_casts'] > 0 and 0 < fig['max_rel_diff'] < 0.25 and fig['cosine'] > 0.99
    saved = mx.nd.load(prefix + '-0000.params')
    dtypes = {str(v.dtype) for v in saved.values()}
    assert any('bfloat16' in d for d in dtypes)              # weights stored as bfloat16
    assert os.path.getsize(prefix + '-0000.params') < 0.6 * 4 * 4.8e6


def test_fast_export(net, tmp_path):
    """The fast graph (fast.prepare), exported partitioned: reloaded, one image per call, it equals the network
    within FAST_TOLERANCE x the parity rule (from results/fast_rounding.md); a batch of two is refused (the graph is
    built for one image)."""
    from rexnet_gluon.convert.parity import allowed_diff
    prefix = str(tmp_path / 'rexnet-fast')
    rep = ex.export_fast(net, prefix, size=SIZE, preprocess=_pp(net), num_eval=8)
    print('\n' + rep.summary())
    assert rep.ok, rep.summary()
    assert rep.figures['fused_convs'] > 50 and rep.figures['max_abs_diff'] <= rep.figures['tolerance']
    assert rep.figures['tolerance'] == mxnet_formats.FAST_TOLERANCE * allowed_diff(rep.figures['logit_scale'])
    assert _outputs(tmp_path) == ['rexnet-fast-0000.params', 'rexnet-fast-symbol.json']
    x = ex.generated_images(3, SIZE, _pp(net), seed=42)
    loaded = mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params')
    got = np.concatenate([_logits(loaded, x[i:i + 1]) for i in range(3)])
    ref = _logits(net, x)
    assert np.abs(got - ref).max() <= mxnet_formats.FAST_TOLERANCE * allowed_diff(np.abs(ref).max())
    assert (got.argmax(1) == ref.argmax(1)).all()
    with pytest.raises(mx.MXNetError):
        _logits(loaded, x[:2])


# ---------------------------------------------------------------------------------------------------
# atomic writes


def test_failure_during_onnx_conversion_leaves_nothing(net, tmp_path, monkeypatch):
    def half_written(sym, params, onnx_file_path=None, **kwargs):
        with open(onnx_file_path, 'wb') as f:
            f.write(b'\x08\x07partial')
        raise RuntimeError('injected failure')

    monkeypatch.setattr(mx.onnx, 'export_model', half_written)
    with pytest.raises(ex.ExportError, match='injected failure'):
        ex.export_onnx(net, str(tmp_path / 'rexnet'), size=SIZE, preprocess=_pp(net))
    assert _outputs(tmp_path) == []


def test_failure_after_symbol_files_are_staged_leaves_nothing(net, tmp_path, monkeypatch):
    def broken(prefix):
        assert os.path.exists(prefix + '-0000.params')          # the files were written (in staging)
        raise OSError('injected failure while verifying')

    monkeypatch.setattr(mxnet_formats, 'load_exported', broken)   # as export_symbol looks it up
    with pytest.raises(OSError, match='injected'):
        ex.export_symbol(net, str(tmp_path / 'rexnet'), size=SIZE, preprocess=_pp(net))
    assert _outputs(tmp_path) == []


def test_failure_while_publishing_restores_previous_files(net, tmp_path, monkeypatch):
    prefix = str(tmp_path / 'rexnet')
    for path in ex.output_files('symbol', prefix):
        with open(path, 'w') as f:
            f.write('old')
    real_replace, calls = os.replace, []

    def flaky(src, dst):   # moving the new .params into place fails once
        calls.append(dst)
        if dst == prefix + '-0000.params' and os.path.basename(src) == 'rexnet-0000.params' and \
                calls.count(dst) == 1:
            raise OSError('injected failure on the second file')
        return real_replace(src, dst)

    monkeypatch.setattr(staging.os, 'replace', flaky)
    with pytest.raises(OSError, match='second file'):
        ex.export_symbol(net, prefix, size=SIZE, preprocess=_pp(net))
    monkeypatch.undo()
    assert _outputs(tmp_path) == ['rexnet-0000.params', 'rexnet-symbol.json']
    for path in ex.output_files('symbol', prefix):
        with open(path) as f:
            assert f.read() == 'old'


def _perturb_params(prefix):
    """Damage an exported ``PREFIX-0000.params`` as a bad write or a wrong graph would: every bias moved by 0.5."""
    arrays = mx.nd.load(prefix + '-0000.params')
    for key in [k for k in arrays if k.endswith('bias')]:
        arrays[key] = arrays[key] + 0.5
    mx.nd.save(prefix + '-0000.params', arrays)


def _corrupting_export(monkeypatch):
    """Every HybridBlock.export writes its files, then one weight of them is damaged."""
    real = mx.gluon.HybridBlock.export

    def export(self, path, epoch=0, **kwargs):
        out = real(self, path, epoch, **kwargs)
        _perturb_params(path)
        return out
    monkeypatch.setattr(mx.gluon.HybridBlock, 'export', export)


@pytest.mark.parametrize('fmt', ['symbol', 'fast'])
def test_corrupted_mxnet_export_fails_its_check_and_publishes_nothing(net, tmp_path, monkeypatch, fmt):
    """The check compares the reloaded file with the network (not the network with itself)."""
    _corrupting_export(monkeypatch)
    rep = ex.export_model(net, fmt, str(tmp_path / 'rexnet'), size=SIZE, preprocess=_pp(net))
    assert not rep.ok and rep.figures['max_abs_diff'] > 0.1, rep.summary()
    assert rep.files == [] and _outputs(tmp_path) == []


def _corrupting_onnx_convert(monkeypatch):
    """mx2onnx writes its file (in staging), then every bias of it is moved by 0.5."""
    from onnx import numpy_helper
    real = onnx_format._onnx_convert

    def convert_then_damage(sym_prefix, onnx_path, size):
        model, rewritten = real(sym_prefix, onnx_path, size)
        for init in [t for t in model.graph.initializer if t.name.endswith('bias')]:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
        onnx.save(model, onnx_path)
        return model, rewritten

    monkeypatch.setattr(onnx_format, '_onnx_convert', convert_then_damage)


def test_corrupted_onnx_file_fails_its_check_and_publishes_nothing(net, tmp_path, monkeypatch):
    _corrupting_onnx_convert(monkeypatch)
    rep = ex.export_onnx(net, str(tmp_path / 'rexnet'), size=SIZE, preprocess=_pp(net))
    assert not rep.ok and rep.figures['max_abs_diff'] > 0.1, rep.summary()
    assert rep.files == [] and _outputs(tmp_path) == []


def test_corrupted_openvino_ir_fails_its_check_and_publishes_nothing(net, tmp_path, monkeypatch):
    """The IR is converted from a damaged ONNX file: the check runs the IR (not MXNet, not the ONNX file) against
    the network, so it fails, and neither .xml nor .bin is published."""
    pytest.importorskip('openvino')
    _corrupting_onnx_convert(monkeypatch)
    rep = ex.export_openvino(net, str(tmp_path / 'rexnet'), size=SIZE, preprocess=_pp(net))
    assert not rep.ok and rep.figures['max_abs_diff'] > 0.1, rep.summary()
    assert [d for d, ok in rep.checks if not ok] == ['OpenVINO matches MXNet at batch 1',
                                                     'OpenVINO matches MXNet at batch 3']
    assert rep.files == [] and _outputs(tmp_path) == []


def test_failed_check_publishes_nothing_unless_asked(net, tmp_path):
    rep = ex.export_bf16(net, str(tmp_path / 'strict'), size=SIZE, preprocess=_pp(net), num_eval=16,
                         batch=16, min_agreement=1.01)
    assert not rep.ok and rep.files == [] and _outputs(tmp_path) == []
    assert 'wrote     nothing' in rep.summary()


# ---------------------------------------------------------------------------------------------------
# command line


def _script(*args, cwd):
    return subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'export.py')] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_cli_symbol_onnx_bf16_fast(params_file, tmp_path):
    proc = _script('--model', 'rexnet_1.0x', '--params', params_file, '--format', 'symbol,onnx',
                   '--format', 'bf16,fast', '--input-size', str(SIZE), '--num-eval', '100', '--output', 'out/rexnet', cwd=str(tmp_path))
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stderr
    for fmt in ('symbol', 'onnx', 'bf16', 'fast'):
        assert '[%s] PASS' % fmt in proc.stdout
    assert 'max|diff| 0 (identical)' in proc.stdout
    assert 'runtime   batch 1' in proc.stdout and 'runtime   batch 3' in proc.stdout
    assert 'top-1 agreement' in proc.stdout and 'all checks passed' in proc.stdout
    assert sorted(os.listdir(tmp_path / 'out')) == ['rexnet-0000.params', 'rexnet-bf16-0000.params',
                                                    'rexnet-bf16-symbol.json', 'rexnet-fast-0000.params',
                                                    'rexnet-fast-symbol.json', 'rexnet-symbol.json', 'rexnet.onnx']


def test_cli_onnx_and_openvino_static(params_file, tmp_path):
    """``python -m rexnet_gluon export``: onnx and openvino under one prefix (PREFIX.onnx, PREFIX.xml/.bin: no
    suffix needed), and --ov-batch makes the IR's batch static."""
    ov = pytest.importorskip('openvino')
    cmd = [sys.executable, '-m', 'rexnet_gluon', 'export', '--model', 'rexnet_1.0x', '--params', params_file,
           '--input-size', str(SIZE), '--output', str(tmp_path / 'out' / 'rexnet'), '--format', 'onnx,openvino',
           '--ov-batch', '2']
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '[onnx] PASS' in proc.stdout and '[openvino] PASS' in proc.stdout and 'Traceback' not in proc.stderr
    assert 'IR        input data [2,3,%d,%d]: static batch 2' % (SIZE, SIZE) in proc.stdout
    assert 'runtime   batch 2: OpenVINO vs MXNet' in proc.stdout
    assert sorted(os.listdir(tmp_path / 'out')) == ['rexnet.bin', 'rexnet.onnx', 'rexnet.xml']
    assert ov.Core().read_model(str(tmp_path / 'out' / 'rexnet.xml')).input(0).get_partial_shape().is_static


def test_cli_int8_with_calibration_dir(params_file, tmp_path):
    """Calibration from a folder of images; with random weights the 99 % check fails: exit 1, the agreement
    is printed, and nothing is published under the prefix."""
    from PIL import Image
    calib = tmp_path / 'calib'
    calib.mkdir()
    for i in range(8):
        rs = np.random.RandomState(100 + i)
        Image.fromarray(rs.randint(0, 255, (90, 120, 3), dtype=np.uint8)).resize((300, 200)).save(
            str(calib / ('%d.png' % i)))
    proc = _script('--model', 'rexnet_1.0x', '--params', params_file, '--format', 'int8', '--input-size', str(SIZE),
                   '--calib-dir', str(calib), '--num-calib', '8', '--num-eval', '100', '--output', 'q/rexnet-int8',
                   '--int8-exclude-ops', 'none', cwd=str(tmp_path))
    print(proc.stdout)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'calibrate 8 images from the calibration set' in proc.stdout
    assert 'kept in fp32' not in proc.stdout   # --int8-exclude-ops none: the Swish products are quantized too
    assert 'top-1 agreement with fp32 on 100 held-out generated images' in proc.stdout
    assert '[int8] FAIL' in proc.stdout and 'wrote     nothing' in proc.stdout
    assert glob.glob(str(tmp_path / 'q' / 'rexnet-int8*')) == []


def test_cli_bad_flags(params_file, tmp_path):
    cases = [
        (['--model', 'rexnet_1.0x', '--format', 'tflite'],
         ["unknown format 'tflite'", 'symbol, onnx, openvino, int8, bf16']),
        (['--model', 'rexnet_1.0x', '--format', 'onnx', '--params', 'missing.params'], ['missing.params']),
        (['--model', 'resnet50', '--format', 'onnx'], ['resnet50'] + get_model_list()),
        (['--model', 'rexnet_1.0x', '--format', 'int8', '--params', params_file, '--calib-dir', 'nowhere'],
         ['nowhere']),
        (['--model', 'rexnet_1.0x', '--format', 'int8', '--params', params_file, '--eval-dir', 'nowhere'],
         ['--eval-dir nowhere: no such folder']),
        (['--model', 'rexnet_1.0x', '--format', 'onnx', '--params', params_file, '--eval-dir', '.'],
         ['--eval-dir is only used by --format int8, openvino-int8 and bf16']),
        (['--model', 'rexnet_1.0x', '--format', 'onnx', '--params', params_file, '--ov-batch', '2'],
         ['--ov-batch is only used by --format openvino']),
        (['--model', 'rexnet_1.0x', '--format', 'int8', '--params', params_file, '--calib-dir', 'imgs',
          '--eval-dir', 'imgs/'], ['the same folder']),
    ]
    from PIL import Image
    os.makedirs(str(tmp_path / 'imgs'))
    Image.new('RGB', (40, 30)).save(str(tmp_path / 'imgs' / 'a.png'))
    for args, words in cases:
        proc = _script(*args, cwd=str(tmp_path))
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert 'Traceback' not in proc.stderr
        for word in words:
            assert word in proc.stderr, (args, proc.stderr)
    # The same command through ``python -m rexnet_gluon export``.
    proc = subprocess.run([sys.executable, '-m', 'rexnet_gluon', 'export', '--model', 'rexnet_1.0x', '--format', 'x'],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown format 'x'" in proc.stderr
    assert os.listdir(tmp_path) == ['imgs']


def test_cli_export_takes_an_alias(params_file, tmp_path, monkeypatch, capsys):
    """--model rexnetv1_1.0.pth (the official file's name): the rexnet_1.0x export, under its zoo name by default."""
    from rexnet_gluon.__main__ import main
    monkeypatch.chdir(tmp_path)
    assert main(['export', '--model', 'RexNetV1_1.0.pth', '--params', params_file, '--format', 'symbol',
                 '--input-size', str(SIZE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('rexnet_1.0x (%s), input 1x3x%dx%d' % (params_file, SIZE, SIZE)) and '[symbol] PASS' in out
    assert sorted(os.listdir(tmp_path)) == ['rexnet_1.0x-0000.params', 'rexnet_1.0x-symbol.json']
