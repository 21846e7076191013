"""Tests for rexnet_gluon.convert and the pt2mx CLI (rexnet_gluon.convert.cli, convert/pt2mx.py).

Layouts are those of docs rexnet-spec sections 2 (official clovaai) and 4 (timm). The parameter table is
checked against three independent sources: the Gluon model, timm's RexNet and the official clovaai state-dict
listing committed in rexnet_gluon/convert/official_state_dicts.json (made from the official module by
scripts/make_official_listing.py). Every other checkpoint used here comes from a seeded random PyTorch reference
model, saved with torch.save / safetensors like real files are.
"""
import collections
import functools
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip('torch')

from rexnet_gluon.convert import cli as convert_cli, parity  # noqa: E402
from rexnet_gluon.convert.checkpoint_io import CheckpointError, load_state_dict  # noqa: E402
from rexnet_gluon.convert import (ConversionError, convert_checkpoint, convert_state_dict, detect,  # noqa: E402
                                  param_table, save_params, spec_from_name)
from rexnet_gluon.model import ReXNet  # noqa: E402
from rexnet_gluon.spec import lite_spec, v1_spec  # noqa: E402
from rexnet_gluon.convert.torch_reference import (randomize_, reference_model, state_dict_in_layout,  # noqa: E402
                                          to_numpy_state_dict)

from rexnet_gluon.convert.official_listing import check_listing, official_listing, timm_to_official  # noqa: E402
from helpers import REPO  # noqa: E402

V1_WIDTHS = ('0.9', '1.0', '1.3', '1.5', '2.0', '2.2', '3.0')
RELEASED_V1 = ('1.0', '1.3', '1.5', '2.0', '3.0')
LITE_WIDTHS = ('1.0', '1.3', '1.5', '2.0')
ALL_NAMES = (['rexnet_%sx' % w for w in V1_WIDTHS] + ['rexnetr_2.0x', 'rexnetr_3.0x']
             + ['rexnet_lite_%sx' % w for w in LITE_WIDTHS])
BROKEN_KEY = 'features.5.out.3.weight'   # block 2's depthwise conv, official layout


# --------------------------------------------------------------------------------------------- helpers

@functools.lru_cache(maxsize=None)
def _reference(name, classes=1000, seed=0):
    """(spec, seeded random reference model); cached, never modified by the tests."""
    spec = spec_from_name(name)
    return spec, randomize_(reference_model(spec, classes), seed=seed)


def torch_sd(name, layout, classes=1000):
    """A fresh state dict (torch tensors, with num_batches_tracked) of the cached reference, in ``layout``."""
    spec, model = _reference(name, classes)
    return collections.OrderedDict((k, v.clone()) for k, v in state_dict_in_layout(model, spec, classes,
                                                                                   layout).items())


def numpy_sd(sd, keep_nbt=True):
    out = to_numpy_state_dict(sd)
    if not keep_nbt:
        out = collections.OrderedDict((k, v) for k, v in out.items() if not k.endswith('num_batches_tracked'))
    return out


def save_ckpt(obj, path, fmt='zip'):
    path = str(path)
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in obj.items()}, path)
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=(fmt == 'zip'))
    return path


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, 'convert/pt2mx.py'] + [str(a) for a in args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def assert_same_arrays(got, want):
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def _keys_shapes(sd):
    return [(k, tuple(v.shape)) for k, v in sd.items() if not k.endswith('num_batches_tracked')]


# ------------------------------------------------------------------- 1. param_table vs the real models

@pytest.mark.parametrize('name', ALL_NAMES)
def test_param_table_gluon_names_and_shapes_equal_the_gluon_model(name):
    spec = spec_from_name(name)
    for classes in (1000, 10):
        net = ReXNet(spec, classes)
        got = [(k, tuple(p.shape)) for k, p in net._collect_params_with_prefix().items()]
        want = [(p.gluon, tuple(p.shape)) for p in param_table(spec, classes)]
        assert got == want   # same names, same shapes, same order


@pytest.mark.parametrize('name', ['rexnet_%sx' % w for w in RELEASED_V1] + ['rexnetr_2.0x', 'rexnetr_3.0x'])
def test_param_table_timm_names_equal_timm_state_dict(name):
    spec = spec_from_name(name)
    model = reference_model(spec, 1000)   # timm RexNet
    want = _keys_shapes(model.state_dict())
    got = [(p.timm, tuple(p.shape[:2]) if p.timm == 'head.fc.weight' else tuple(p.shape))
           for p in param_table(spec)]
    assert got == want
    # The official names of rexnetr follow the same (structural) scheme as rexnet's.
    assert [p.official for p in param_table(spec)] == [p.official for p in param_table(v1_spec(1.0))]


def _listed(name):
    return [(k, shape) for k, shape in official_listing(name) if not k.endswith('num_batches_tracked')]


@pytest.mark.parametrize('width', RELEASED_V1)
def test_param_table_official_names_equal_the_official_listing(width):
    want = _listed('rexnet_%sx' % width)
    assert len(want) == 351   # spec section 2: 413 entries with num_batches_tracked, 351 without
    assert [(p.official, tuple(p.shape)) for p in param_table(spec_from_name('rexnet_%sx' % width))] == want


@pytest.mark.parametrize('width', RELEASED_V1)
def test_timm_to_official_rule_covers_the_listing_exactly(width):
    """The rename rule that writes the official-layout test checkpoints yields the listing: every key, in order,
    with its shape (num_batches_tracked included), from timm's model and independently of param_table."""
    name = 'rexnet_%sx' % width
    renamed = timm_to_official(reference_model(spec_from_name(name), 1000).state_dict())
    assert [(k, tuple(v.shape)) for k, v in renamed.items()] == official_listing(name)
    assert check_listing(renamed, name)


def test_listing_check_rejects_swapped_names():
    sd = timm_to_official(reference_model(spec_from_name('rexnet_1.0x'), 1000).state_dict())
    keys = list(sd)
    a, b = keys.index('features.1.running_mean'), keys.index('features.1.running_var')
    keys[a], keys[b] = keys[b], keys[a]
    with pytest.raises(ValueError, match='differs from the official listing'):
        check_listing(collections.OrderedDict((k, sd[k]) for k in keys), 'rexnet_1.0x')
    assert check_listing(sd, 'rexnet_0.9x') is False    # unreleased width: nothing to check against


def test_clovaai_official_state_dict_is_detected_and_converted():
    rng = np.random.default_rng(3)
    sd = collections.OrderedDict((k, rng.standard_normal(shape).astype(np.float32) if shape else np.array(0))
                                 for k, shape in official_listing('rexnet_1.0x'))
    assert len(sd) == 413
    layout, spec, classes = detect(sd)
    assert (layout, spec, classes) == ('official', spec_from_name('rexnet_1.0x'), 1000)
    arrays = convert_state_dict(sd)[0]
    for gluon, official in (('features.5.out.4.gamma', 'features.5.out.4.weight'),
                            ('features.5.out.4.running_mean', 'features.5.out.4.running_mean'),
                            ('features.5.out.4.running_var', 'features.5.out.4.running_var'),
                            ('features.1.running_var', 'features.1.running_var'),
                            ('output.1.weight', 'output.1.weight')):
        np.testing.assert_array_equal(arrays[gluon], sd[official], err_msg=gluon)


@pytest.mark.parametrize('width', LITE_WIDTHS)
def test_param_table_lite_official_names_and_no_timm_names(width):
    name = 'rexnet_lite_%sx' % width
    spec = spec_from_name(name)
    rows = param_table(spec)
    assert all(p.timm is None for p in rows)
    got = [(p.official, tuple(p.shape)) for p in rows]
    assert got == _keys_shapes(reference_model(spec, 1000).state_dict())   # our lite reference
    assert got == _listed(name)                                              # the official ReXNetV1_lite


# ----------------------------------------------------------------------------------------- 2. detect

DETECT_CASES = (
    [('rexnet_%sx' % w, layout, 1000) for w in RELEASED_V1 for layout in ('official', 'timm')]
    + [('rexnetr_2.0x', 'timm', 1000), ('rexnetr_3.0x', 'timm', 1000)]
    + [('rexnet_lite_%sx' % w, 'official_lite', 1000) for w in LITE_WIDTHS]
    + [('rexnet_1.0x', 'official', 10), ('rexnet_1.0x', 'timm', 10), ('rexnetr_2.0x', 'timm', 10),
       ('rexnet_lite_1.0x', 'official_lite', 10)]
    + [('rexnet_1.23x', 'official', 1000), ('rexnet_1.23x', 'timm', 1000)])


@pytest.mark.parametrize('keep_nbt', [True, False], ids=['with_nbt', 'without_nbt'])
@pytest.mark.parametrize('name,layout,classes', DETECT_CASES, ids=['%s-%s-%d' % c for c in DETECT_CASES])
def test_detect(name, layout, classes, keep_nbt):
    sd = numpy_sd(torch_sd(name, layout, classes), keep_nbt)
    assert any(k.endswith('num_batches_tracked') for k in sd) == keep_nbt   # guard
    got_layout, spec, got_classes = detect(sd)
    assert (got_layout, got_classes) == (layout, classes)
    want = v1_spec(1.23) if name == 'rexnet_1.23x' else spec_from_name(name)
    assert spec == want
    if name == 'rexnet_1.23x':
        assert spec.pen == int(1280 * 1.23) and spec.stem == 39
    # The reported name gives back the same network (what the CLI tells users to load).
    assert spec_from_name(spec.name) == spec


@functools.lru_cache(maxsize=None)
def _depth2_model():
    from timm.models.rexnet import RexNet
    return randomize_(RexNet(depth_mult=2.0), seed=5)


@pytest.mark.parametrize('keep_nbt', [True, False], ids=['with_nbt', 'without_nbt'])
@pytest.mark.parametrize('layout', ['timm', 'official'])
def test_detect_depth_mult_2(layout, keep_nbt):
    want = v1_spec(1.0, depth_mult=2.0)
    sd = numpy_sd(state_dict_in_layout(_depth2_model(), want, 1000, layout), keep_nbt)
    got_layout, spec, classes = detect(sd)
    assert (got_layout, spec, classes) == (layout, want, 1000)
    assert len(spec.blocks) == 32 and spec != v1_spec(1.0)


def test_depth_mult_2_name_round_trips():
    want = v1_spec(1.0, depth_mult=2.0)
    _, spec, _ = detect(numpy_sd(_depth2_model().state_dict()))
    assert spec == want
    assert spec_from_name(spec.name) == spec


@pytest.mark.parametrize('name,layout', [('rexnet_1.3x', 'official'), ('rexnet_1.3x', 'timm'),
                                         ('rexnet_lite_1.3x', 'official_lite')])
def test_convert_state_dict_maps_every_value(name, layout):
    """Each Gluon array is exactly the checkpoint tensor named in the table (head reshaped for timm)."""
    sd = numpy_sd(torch_sd(name, layout))
    arrays, spec, classes, got_layout = convert_state_dict(sd)
    rows = param_table(spec, classes)
    assert got_layout == layout and list(arrays) == [p.gluon for p in rows]
    for p in rows:
        src = sd[p.timm if layout == 'timm' else p.official]
        assert arrays[p.gluon].dtype == np.float32 and arrays[p.gluon].shape == p.shape
        np.testing.assert_array_equal(arrays[p.gluon], src.reshape(p.shape), err_msg=p.gluon)


# ------------------------------------------------------------------------ 3. wrapped and prefixed files

WRAPS = ['bare', 'state_dict', 'model_epoch', 'module_prefix', 'module_prefix_in_wrapper']


def _wrap(sd, how):
    if how == 'bare':
        return sd
    if how == 'state_dict':
        return {'state_dict': sd}
    if how == 'model_epoch':
        return {'model': sd, 'epoch': 1}
    prefixed = collections.OrderedDict(('module.' + k, v) for k, v in sd.items())
    return prefixed if how == 'module_prefix' else {'state_dict': prefixed, 'epoch': 3}


@pytest.mark.parametrize('layout', ['official', 'timm'])
@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'safetensors'])
def test_wrapped_and_prefixed_files_convert_like_the_bare_dict(tmp_path, fmt, layout):
    sd = torch_sd('rexnet_1.0x', layout)
    want_arrays, want_spec, want_classes, want_layout = convert_state_dict(numpy_sd(sd))
    wraps = ['bare', 'module_prefix'] if fmt == 'safetensors' else WRAPS   # safetensors holds flat dicts only
    for how in wraps:
        path = save_ckpt(_wrap(sd, how), tmp_path / ('%s.%s' % (how, 'safetensors' if fmt == 'safetensors'
                                                                 else 'pth')), fmt)
        out = str(tmp_path / ('%s.params' % how))
        arrays, spec, classes, got_layout = convert_checkpoint(path, output=out)
        assert (spec, classes, got_layout) == (want_spec, want_classes, want_layout), how
        assert_same_arrays(arrays, want_arrays)
        import mxnet as mx
        assert_same_arrays({k: v.asnumpy() for k, v in mx.nd.load(out).items()}, want_arrays)


# --------------------------------------------------------------------------------- 4. --model mismatch

@pytest.mark.parametrize('layout', ['official', 'timm'])
def test_model_width_mismatch_names_both_models(tmp_path, layout):
    path = save_ckpt(torch_sd('rexnet_1.5x', layout), tmp_path / 'r15.pth')
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(path, output=str(tmp_path / 'out.params'), model='rexnet_1.0x')
    msg = str(info.value)
    assert 'rexnet_1.0x' in msg and 'rexnet_1.5x' in msg and path in msg, msg
    assert os.listdir(str(tmp_path)) == ['r15.pth']
    # the right name is accepted
    assert convert_checkpoint(path, model='rexnet_1.5x')[1] == spec_from_name('rexnet_1.5x')


@pytest.mark.parametrize('ckpt,asked,layout', [('rexnet_lite_1.0x', 'rexnet_1.0x', 'official_lite'),
                                               ('rexnet_1.0x', 'rexnet_lite_1.0x', 'official'),
                                               ('rexnet_1.0x', 'rexnet_lite_1.0x', 'timm')])
def test_model_family_mismatch_names_both_models(tmp_path, ckpt, asked, layout):
    path = save_ckpt(torch_sd(ckpt, layout), tmp_path / 'ck.pth')
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(path, model=asked)
    msg = str(info.value)
    assert asked in msg and ckpt in msg, msg


def test_cli_model_mismatch_is_a_clean_error(tmp_path):
    path = save_ckpt(torch_sd('rexnet_1.5x', 'official'), tmp_path / 'r15.pth')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    res = run_cli('--checkpoint', path, '--output', out_dir / 'r.params', '--model', 'rexnet_1.0x')
    assert_clean_cli_error(res, out_dir)
    assert 'rexnet_1.0x' in res.stderr and 'rexnet_1.5x' in res.stderr


# ------------------------------------------------------------------------------------------ 5. bad input

def assert_clean_cli_error(res, out_dir):
    """Exit 2, one 'error: ...' paragraph on stderr, no traceback, nothing written to the output folder."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.startswith('error: '), res.stderr
    assert 'Traceback' not in res.stderr and 'Traceback' not in res.stdout, res.stderr
    assert '\n\n' not in err and len(err) > 40, res.stderr   # one readable paragraph
    assert os.listdir(str(out_dir)) == []                   # no .params, no temporary file


LAYOUT_OF = {'rexnet_1.0x': 'official', 'rexnet_lite_1.0x': 'official_lite'}


def _bad_checkpoint(kind, tmp_path, name='rexnet_1.0x'):
    """(path, model to pass, exception type, substrings the message must contain)."""
    path = str(tmp_path / ('%s.pth' % kind))
    if kind == 'resnet18':
        tv = pytest.importorskip('torchvision')
        save_ckpt(tv.models.resnet18(weights=None).state_dict(), path)
        return path, None, ConversionError, ['not a ReXNet checkpoint', 'conv1.weight', 'features.0.weight']
    if kind == 'linear':
        save_ckpt(torch.nn.Linear(3, 4).state_dict(), path)
        return path, None, ConversionError, ['not a ReXNet checkpoint', 'weight, bias']
    if kind == 'missing_file':
        return str(tmp_path / 'nowhere' / 'absent.pth'), None, CheckpointError, ['no such file']
    sd = torch_sd(name, LAYOUT_OF[name])
    expected = {p.official: p.shape for p in param_table(spec_from_name(name))}[BROKEN_KEY]
    if kind == 'missing_key':
        del sd[BROKEN_KEY]
        need = ['1 keys are missing', BROKEN_KEY]
    elif kind == 'extra_key':
        sd['features.5.out.99.weight'] = torch.zeros(4, 4)
        need = ['1 keys are unexpected', 'features.5.out.99.weight']
    elif kind == 'wrong_shape':
        sd[BROKEN_KEY] = torch.zeros(expected[0] + 1, *expected[1:])
        need = [BROKEN_KEY, str((expected[0] + 1,) + expected[1:]), str(expected)]
    elif kind in ('nan', 'inf', '-inf'):
        sd[BROKEN_KEY][3, 0, 1, 1] = float(kind)
        return save_ckpt(sd, path), None, ConversionError, [BROKEN_KEY, 'NaN' if kind == 'nan' else 'inf']
    elif kind == 'truncated':
        full = save_ckpt(sd, tmp_path / 'full.pth')
        with open(full, 'rb') as f:
            data = f.read()
        os.remove(full)
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
        return path, None, CheckpointError, ['truncated']
    else:
        raise AssertionError(kind)
    # Missing/extra/wrong-shape tensors are only described key by key when the model is named (see the
    # test below for the default, detected case).
    return save_ckpt(sd, path), name, ConversionError, need


# A failed V1 detection takes ~9 s (every SE ratio and depth is tried), so the in-process checks of the
# missing/extra/wrong-shape cases use ReXNet-lite (same message code, <1 s); the CLI test runs them on V1.
API_CASES = [('resnet18', 'rexnet_1.0x'), ('linear', 'rexnet_1.0x'), ('missing_key', 'rexnet_lite_1.0x'),
             ('extra_key', 'rexnet_lite_1.0x'), ('wrong_shape', 'rexnet_lite_1.0x'), ('nan', 'rexnet_1.0x'),
             ('nan', 'rexnet_lite_1.0x'), ('inf', 'rexnet_1.0x'), ('-inf', 'rexnet_lite_1.0x'), ('truncated', 'rexnet_1.0x'),
             ('missing_file', 'rexnet_1.0x')]


@pytest.mark.parametrize('kind,name', API_CASES, ids=['%s-%s' % c for c in API_CASES])
def test_bad_checkpoint_raises_a_specific_error(tmp_path, kind, name):
    path, model, exc, need = _bad_checkpoint(kind, tmp_path, name)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    with pytest.raises(exc) as info:
        convert_checkpoint(path, output=str(out_dir / 'x.params'), model=model)
    msg = str(info.value)
    assert path in msg, msg
    for s in need:
        assert s in msg, (s, msg)
    assert os.listdir(str(out_dir)) == []


@pytest.mark.parametrize('kind', ['resnet18', 'missing_key', 'extra_key', 'wrong_shape', 'nan', 'inf', 'truncated',
                                  'missing_file'])
def test_cli_bad_checkpoint_is_a_clean_error(tmp_path, kind):
    path, model, _, need = _bad_checkpoint(kind, tmp_path)   # rexnet_1.0x, official layout
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    args = ['--checkpoint', path, '--output', out_dir / 'OUT.params'] + (['--model', model] if model else [])
    res = run_cli(*args)
    assert_clean_cli_error(res, out_dir)
    assert path in res.stderr
    for s in need:
        assert s in res.stderr, (s, res.stderr)


XFAIL_CASES = [('wrong_shape', 'rexnet_1.0x'), ('missing_key', 'rexnet_lite_1.0x'),
               ('extra_key', 'rexnet_lite_1.0x'), ('wrong_shape', 'rexnet_lite_1.0x')]


@pytest.mark.parametrize('kind,name', XFAIL_CASES, ids=['%s-%s' % c for c in XFAIL_CASES])
def test_default_detection_error_names_the_bad_tensor(tmp_path, kind, name):
    path, _, _, _ = _bad_checkpoint(kind, tmp_path, name)
    with pytest.raises(ConversionError) as info:
        convert_checkpoint(path)
    msg = str(info.value)
    key, word = {'missing_key': (BROKEN_KEY, 'missing'), 'extra_key': ('features.5.out.99.weight', 'unexpected'),
                 'wrong_shape': (BROKEN_KEY, 'shape')}[kind]
    assert key in msg and word in msg.lower(), msg   # any wording, as long as it says which tensor and what


# ---------------------------------------------------------------------------------------- 6. atomic write

ARRAYS = collections.OrderedDict([('a.weight', np.arange(6, dtype=np.float32).reshape(2, 3)),
                                  ('a.bias', np.ones(2, np.float32))])


def _failing_save(exc):
    def save(fname, data):
        with open(fname, 'wb') as f:   # a partial file first, as a full disk would leave
            f.write(b'partial params')
        raise exc
    return save


@pytest.mark.parametrize('exc', [OSError(28, 'No space left on device'), KeyboardInterrupt()],
                         ids=['OSError', 'KeyboardInterrupt'])
@pytest.mark.parametrize('existing', [False, True], ids=['new_target', 'existing_target'])
def test_save_params_failure_leaves_no_partial_or_temp_file(tmp_path, monkeypatch, exc, existing):
    import mxnet as mx
    target = tmp_path / 'net.params'
    if existing:
        target.write_bytes(b'the previous, good file')
    monkeypatch.setattr(mx.nd, 'save', _failing_save(exc))
    with pytest.raises(type(exc)):
        save_params(ARRAYS, str(target))
    if existing:
        assert os.listdir(str(tmp_path)) == ['net.params']
        assert target.read_bytes() == b'the previous, good file'
    else:
        assert os.listdir(str(tmp_path)) == []


def test_save_params_failed_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / 'net.params'
    target.write_bytes(b'old')

    def fail(src, dst):
        raise PermissionError(13, 'Permission denied', dst)
    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(PermissionError):
        save_params(ARRAYS, str(target))
    monkeypatch.undo()
    assert os.listdir(str(tmp_path)) == ['net.params'] and target.read_bytes() == b'old'


def test_save_params_success_replaces_target_and_leaves_nothing_else(tmp_path):
    import mxnet as mx
    target = tmp_path / 'sub' / 'net.params'
    target.parent.mkdir()
    target.write_bytes(b'old')
    assert save_params(ARRAYS, str(target)) == str(target)
    assert os.listdir(str(target.parent)) == ['net.params']
    assert_same_arrays({k: v.asnumpy() for k, v in mx.nd.load(str(target)).items()}, ARRAYS)


def test_save_params_file_mode_follows_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        path = save_params(ARRAYS, str(tmp_path / 'net.params'))
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o644


# ------------------------------------------------------------------------------------------ 7. CLI runs

@pytest.fixture
def r10_checkpoint(tmp_path):
    return save_ckpt(torch_sd('rexnet_1.0x', 'timm'), tmp_path / 'rexnet_1.0x.pth')


def test_cli_convert_and_check_passes(tmp_path, r10_checkpoint):
    import mxnet as mx
    out_dir = tmp_path / 'out'
    out = out_dir / 'rexnet_1.0x.params'
    res = run_cli('--checkpoint', r10_checkpoint, '--output', out, '--check', '--input-size', 64)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'Traceback' not in res.stderr
    assert 'layout      timm' in res.stdout and 'rexnet_1.0x (1000 classes' in res.stdout
    parity_line = [line for line in res.stdout.splitlines() if 'parity' in line]
    assert len(parity_line) == 1 and parity_line[0].rstrip().endswith('PASS'), res.stdout
    assert os.listdir(str(out_dir)) == ['rexnet_1.0x.params']
    net = ReXNet(spec_from_name('rexnet_1.0x'))
    net.load_parameters(str(out))          # strict: every parameter present, no extra ones
    want = convert_state_dict(numpy_sd(torch_sd('rexnet_1.0x', 'timm')))[0]
    got = {k: p.data().asnumpy() for k, p in net._collect_params_with_prefix().items()}
    assert_same_arrays(collections.OrderedDict((k, got[k]) for k in want), want)
    y = net(mx.nd.zeros((1, 3, 64, 64)))
    assert y.shape == (1, 1000) and np.isfinite(y.asnumpy()).all()


def test_cli_check_reports_fail_when_parity_fails(tmp_path, r10_checkpoint, monkeypatch, capsys):
    monkeypatch.setattr(parity, 'TOLERANCE', {'float32': 1e-12, 'float64': 1e-30})
    out = tmp_path / 'out.params'
    code = convert_cli.main(['--checkpoint', r10_checkpoint, '--output', str(out), '--check',
                             '--input-size', '64', '-q'])
    stdout = capsys.readouterr().out
    assert code == 1, stdout
    assert 'FAILED' in stdout and stdout.rstrip().endswith('FAIL') and 'PASS' not in stdout
    assert out.exists()   # the conversion itself succeeded; only the check failed


def test_cli_demo_subset_writes_a_passing_report(tmp_path):
    report, work = tmp_path / 'p.md', tmp_path / 'work'
    res = run_cli('--demo-models', 'rexnet_1.0x', '--input-size', 64, '--report', report, '--work-dir', work)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '2/2 cases passed' in res.stdout
    rows = [line for line in report.read_text().splitlines() if line.startswith('| rexnet_1.0x |')]
    assert [r.split('|')[2].strip() for r in rows] == ['official', 'timm']
    assert all(r.rstrip().endswith('| PASS |') for r in rows), rows
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith('.tmp')]
    params = sorted(f for f in os.listdir(str(work)) if f.endswith('.params'))
    assert params == ['rexnet_1.0x-official-random.params', 'rexnet_1.0x-timm-random.params']


# ------------------------------------------------------------------------------------------ 8. bad flags

def test_spec_from_name_rejects_bad_names():
    for bad in ('rexnet_9', 'rexnet', 'resnet_1.0x', 'rexnet_1.0', 'rexnet_lite_x'):
        with pytest.raises(ValueError, match=r'rexnet_<width>x.*e\.g\. rexnet_1\.0x'):
            spec_from_name(bad)
    assert spec_from_name(' ReXNet_1.5X ') == v1_spec(1.5)


def test_cli_bad_model_name_explains_the_form(tmp_path, r10_checkpoint):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    res = run_cli('--checkpoint', r10_checkpoint, '--output', out_dir / 'x.params', '--model', 'rexnet_9')
    assert res.returncode != 0
    assert "'rexnet_9'" in res.stderr and 'rexnet_<width>x' in res.stderr and 'rexnet_1.0x' in res.stderr
    assert os.listdir(str(out_dir)) == []


def test_cli_bad_model_name_is_a_clean_error(tmp_path, r10_checkpoint):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    res = run_cli('--checkpoint', r10_checkpoint, '--output', out_dir / 'x.params', '--model', 'rexnet_9')
    assert_clean_cli_error(res, out_dir)


def test_cli_output_must_end_in_params(tmp_path, r10_checkpoint):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    res = run_cli('--checkpoint', r10_checkpoint, '--output', out_dir / 'x.bin')
    assert_clean_cli_error(res, out_dir)
    assert '.params' in res.stderr and 'load_parameters' in res.stderr


def test_cli_unwritable_output_is_a_clean_error(tmp_path, r10_checkpoint):
    blocker = tmp_path / 'blocker'
    blocker.write_bytes(b'not a folder')
    res = run_cli('--checkpoint', r10_checkpoint, '--output', blocker / 'x.params')
    assert res.returncode == 2 and res.stderr.startswith('error: ') and 'Traceback' not in res.stderr, \
        res.stderr
    assert blocker.read_bytes() == b'not a folder'
