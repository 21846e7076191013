"""Converted checkpoints equal the PyTorch reference: every released width, both layouts, fp32 and fp64.

The reference is timm's RexNet (numerically the official network) for V1/rexnetr and our own marked
reference for lite. Weights are seeded random with random BN statistics and affine parameters; eval mode.
"""
import pytest

from rexnet_gluon.convert import convert_checkpoint, spec_from_name
from rexnet_gluon.convert.cli import DEMO_CASES, _save_checkpoint
from rexnet_gluon.convert.parity import check_parity
from rexnet_gluon.convert.torch_reference import randomize_, reference_model, state_dict_in_layout

torch = pytest.importorskip('torch')


@pytest.mark.parametrize('name,layout,fmt', DEMO_CASES, ids=['%s-%s-%s' % c for c in DEMO_CASES])
def test_parity(name, layout, fmt, tmp_path):
    spec = spec_from_name(name)
    ref = randomize_(reference_model(spec, 1000), seed=7)
    path = str(tmp_path / ('ckpt.safetensors' if fmt == 'safetensors' else 'ckpt.pth'))
    _save_checkpoint(state_dict_in_layout(ref, spec, 1000, layout), path, fmt)
    out = str(tmp_path / 'ckpt.params')
    arrays, got_spec, classes, got_layout = convert_checkpoint(path, output=out)
    assert (got_spec, classes, got_layout) == (spec, 1000, layout)
    from rexnet_gluon.convert.checkpoint_io import load_state_dict
    fp32, fp64 = check_parity(load_state_dict(path), layout, out, spec, classes, ('float32', 'float64'),
                              batch=2, size=128, seed=3)
    assert fp32.logit_scale > 5          # logits of a realistic scale, not all ~0
    assert fp32.top1_agreement == 1.0 and fp64.top1_agreement == 1.0
    assert fp32.max_abs_diff < 1e-4 * max(1, fp32.logit_scale / 15), fp32
    assert fp64.max_abs_diff < 1e-11, fp64   # identical graphs: only rounding at 1e-14 remains
    assert fp32.ok and fp64.ok


def test_parity_detects_a_wrong_weight(tmp_path):
    """The check can fail: one perturbed BN statistic in the Gluon copy makes it report a failure."""
    spec = spec_from_name('rexnet_1.0x')
    ref = randomize_(reference_model(spec, 1000), seed=8)
    sd = {k: v.numpy() for k, v in state_dict_in_layout(ref, spec, 1000, 'timm').items()}
    from rexnet_gluon.convert import convert_state_dict
    arrays = convert_state_dict(sd)[0]
    arrays['features.9.out.4.running_var'] = arrays['features.9.out.4.running_var'] * 1.01
    fp32, = check_parity(sd, 'timm', arrays, spec, 1000, ('float32',), batch=2, size=64)
    assert not fp32.ok and fp32.max_abs_diff > 1e-3
