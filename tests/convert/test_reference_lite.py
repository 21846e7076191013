"""Tests for rexnet_gluon.convert.reference_lite, our own PyTorch reference of the official ReXNet-lite.

Always run: the state-dict layout of every released width equals the official listing committed in
rexnet_gluon/convert/official_state_dicts.json. Opt-in (the official code is not part of this repository): with
``CLOVAAI_REXNET_DIR`` set to a clovaai/rexnet checkout, the official ``ReXNetV1_lite`` itself is built and must
have the same layout for other settings and identical logits.
"""
import importlib.util
import os

import pytest
import torch

from rexnet_gluon.convert.reference_lite import (ReXNetV1Lite, ReXNetV1_lite, lite_schedule, make_divisible,
                                         randomize_)

from rexnet_gluon.convert.official_listing import official_listing

OFFICIAL_DIR = os.environ.get('CLOVAAI_REXNET_DIR')

PARAM_COUNTS = {1.0: 4740056, 1.3: 6747960, 1.5: 8332296, 2.0: 12966200}


def _num_params(model):
    return sum(p.numel() for p in model.parameters())


def _official_module():
    """The official rexnetv1_lite.py of the checkout named by CLOVAAI_REXNET_DIR (opt-in)."""
    if not OFFICIAL_DIR:
        pytest.skip('set CLOVAAI_REXNET_DIR to a clovaai/rexnet checkout to compare with the official module')
    path = os.path.join(OFFICIAL_DIR, 'rexnetv1_lite.py')
    if not os.path.isfile(path):
        pytest.fail('CLOVAAI_REXNET_DIR=%s holds no rexnetv1_lite.py' % OFFICIAL_DIR)
    spec = importlib.util.spec_from_file_location('official_rexnetv1_lite', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def official():
    return _official_module().ReXNetV1_lite


@pytest.mark.parametrize('multiplier', sorted(PARAM_COUNTS))
def test_state_dict_equals_the_official_listing(multiplier):
    sd = ReXNetV1Lite(multiplier=multiplier).state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == official_listing('rexnet_lite_%.1fx' % multiplier)


def test_make_divisible():
    assert make_divisible(16, 8) == 16
    assert make_divisible(26, 8) == 24          # nearest multiple, 24 >= 0.9 * 26
    assert make_divisible(27, 8) == 32          # 24 < 0.9 * 27: bumped up by one divisor
    assert make_divisible(29, 8) == 32
    assert make_divisible(3, 8) == 8            # never below the divisor
    assert make_divisible(75, 16) == 80
    assert make_divisible(17, 0) == 17 and make_divisible(17, None) == 17
    assert make_divisible(19, 16) == 32         # 16 < 0.9 * 19: bumped up by one divisor


@pytest.mark.parametrize('multiplier', sorted(PARAM_COUNTS))
def test_param_counts(multiplier):
    model = ReXNetV1Lite(multiplier=multiplier, classes=1000)
    assert _num_params(model) == PARAM_COUNTS[multiplier]


def test_schedule_at_1_0():
    stem, blocks, pen = lite_schedule(multiplier=1.0)
    assert stem == 32 and pen == 1280
    assert [b[1] for b in blocks] == [16, 32, 40, 48, 64, 72, 80, 96, 104, 112, 128, 136, 144, 160, 168, 184]
    assert [b[0] for b in blocks] == [32] + [b[1] for b in blocks[:-1]]
    assert [b[2] for b in blocks] == [1] + [6] * 15
    assert [b[4] for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    model = ReXNetV1Lite()
    assert model.stem_channels == 32 and model.pen_channels == 1280
    assert model.block_channels == [b[1] for b in blocks]
    assert ReXNetV1_lite is ReXNetV1Lite


def test_kernel_conf_layout():
    _, blocks, _ = lite_schedule(kernel_conf='335577')
    assert [b[3] for b in blocks] == [3, 3, 3, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7, 7, 7, 7]
    with pytest.raises(ValueError):
        lite_schedule(kernel_conf='3333')


def test_state_dict_layout():
    sd = ReXNetV1Lite().state_dict()
    assert len(sd) == 303
    # BNs: stem 1 + block 0 (t = 1) 2 + 15 blocks x 3 + final 1 + output 1 = 50
    assert sum(k.endswith('num_batches_tracked') for k in sd) == 50
    assert tuple(sd['features.0.weight'].shape) == (32, 3, 3, 3)
    assert 'features.1.running_var' in sd
    # block 0 (t = 1): no expansion conv; dw conv at out.0
    assert tuple(sd['features.3.out.0.weight'].shape) == (32, 1, 3, 3)
    assert tuple(sd['features.3.out.3.weight'].shape) == (16, 32, 1, 1)
    # block 1 (t = 6): expansion conv at out.0, dw at out.3, projection at out.6
    assert tuple(sd['features.4.out.0.weight'].shape) == (96, 16, 1, 1)
    assert tuple(sd['features.4.out.3.weight'].shape) == (96, 1, 3, 3)
    assert tuple(sd['features.4.out.6.weight'].shape) == (32, 96, 1, 1)
    assert tuple(sd['features.19.weight'].shape) == (1280, 184, 1, 1)
    assert 'features.20.running_mean' in sd
    assert tuple(sd['output.0.weight'].shape) == (1024, 1280, 1, 1) and 'output.0.bias' in sd
    assert tuple(sd['output.1.weight'].shape) == (1024,)
    assert tuple(sd['output.4.weight'].shape) == (1000, 1024, 1, 1) and 'output.4.bias' in sd


@pytest.mark.parametrize('classes', [1000, 10])
def test_forward_shape(classes):
    model = randomize_(ReXNetV1Lite(classes=classes), seed=0)
    with torch.no_grad():
        y = model(torch.randn(1, 3, 64, 64))
    assert y.shape == (1, classes)
    assert torch.isfinite(y).all()


def test_randomize_deterministic_and_nontrivial():
    a = randomize_(ReXNetV1Lite(), seed=3)
    b = randomize_(ReXNetV1Lite(), seed=3)
    c = randomize_(ReXNetV1Lite(), seed=4)
    assert not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa['features.0.weight'], sc['features.0.weight'])
    for mod in a.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert 0.5 <= mod.weight.min() and mod.weight.max() <= 1.5
            assert 0.5 <= mod.running_var.min() and mod.running_var.max() <= 1.5
            assert mod.bias.abs().max() > 0 and mod.running_mean.abs().max() > 0
            assert not torch.allclose(mod.weight, torch.ones_like(mod.weight))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = a(x)
    assert torch.isfinite(y).all()
    assert 3.0 < y.std() < 15.0 and 5.0 < y.abs().max() < 40.0


def test_inplace_and_out_of_place_shortcut_agree():
    block = ReXNetV1Lite().features[5]       # block 2: 32 -> 40, stride 1, partial shortcut
    assert block.use_shortcut and block.in_channels < block.out_channels
    randomize_(block, seed=1)
    x = torch.randn(2, 32, 12, 12)
    with torch.no_grad():
        want = block.out(x).clone()
        want[:, :32] += x
        assert torch.equal(block(x), want)


@pytest.mark.parametrize('kwargs', [dict(multiplier=0.5), dict(multiplier=0.75), dict(multiplier=0.9),
                                    dict(multiplier=1.3, fix_head_stem=True), dict(multiplier=3.0),
                                    dict(multiplier=1.0, divisible_value=16, classes=7)])
def test_layout_matches_official_other_settings(official, kwargs):
    ours = ReXNetV1Lite(**kwargs).state_dict()
    theirs = official(**kwargs).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize('multiplier', [1.0, 1.3, 1.5, 2.0])
def test_logits_match_official(official, multiplier):
    torch.manual_seed(0)
    ours = randomize_(ReXNetV1Lite(multiplier=multiplier, kernel_conf='335577'), seed=11)
    theirs = official(multiplier=multiplier, kernel_conf='335577')
    assert _num_params(theirs) == _num_params(ours)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    theirs.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a = ours(x)
        b = theirs(x)
    assert a.shape == b.shape == (2, 1000)
    assert torch.isfinite(a).all()
    assert a.abs().max() > 1.0                  # not a degenerate all-zero comparison
    assert (a - b).abs().max().item() < 1e-5


def test_official_param_counts(official):
    for multiplier, count in PARAM_COUNTS.items():
        assert _num_params(official(multiplier=multiplier)) == count


def test_randomize_gives_official_module_same_weights(official):
    ours = randomize_(ReXNetV1Lite(multiplier=1.3), seed=2).state_dict()
    theirs = randomize_(official(multiplier=1.3), seed=2).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
