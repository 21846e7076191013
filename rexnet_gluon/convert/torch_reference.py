"""PyTorch reference networks for parity checks (imports torch and timm; never imported by the model).

- ReXNet-V1 and rexnetr: timm's ``RexNet``, numerically the official network (rexnet-spec section 4).
- ReXNet-lite: timm has none, so :mod:`rexnet_gluon.reference_lite` is our own reference.
"""
from collections import OrderedDict

import numpy as np

from .mapping import param_table
from .official_listing import check_listing, official_to_timm, timm_to_official

__all__ = ['reference_model', 'randomize_', 'state_dict_in_layout', 'to_numpy_state_dict']


def _require_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError('the parity check needs PyTorch and timm: pip install -e ".[torch]" '
                          '(conversion itself does not need them)') from None


def reference_model(spec, classes=1000):
    """A PyTorch model whose state_dict has exactly ``spec``'s shapes, in eval mode."""
    _require_torch()
    if spec.lite:
        from .reference_lite import ReXNetV1Lite
        m = _lite_args(spec)
        model = ReXNetV1Lite(classes=classes, **m)
    else:
        from timm.models.rexnet import RexNet
        ch_div = _ch_div(spec)
        depth = _depth_of(spec)
        se = next((b for b in spec.blocks if b.se_channels), None)
        # timm takes the SE ratio as a float; its rounded variant always uses 1/12.
        se_ratio = 0.0 if se is None else 1.0 / (_se_ratio(spec) if ch_div == 1 else 12)
        model = RexNet(num_classes=classes, width_mult=_width_of(spec), depth_mult=depth, se_ratio=se_ratio,
                       ch_div=ch_div)
    model.eval()
    expected = {p.official if spec.lite else p.timm: p.shape for p in param_table(spec, classes)}
    got = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    for k, shape in expected.items():
        want = shape[:2] if k == 'head.fc.weight' else tuple(shape)
        if got.get(k) != want:
            raise ValueError('the PyTorch reference for %s has %s %s where we expect %s: it cannot serve as a '
                             'reference for this spec' % (spec.name, k, got.get(k), want))
    return model


def _width_of(spec):
    return float(spec.name.rsplit('_', 1)[1].rstrip('x'))


def _ch_div(spec):
    return 1 if spec.name.startswith('rexnet_') else (16 if _width_of(spec) >= 3.0 else 8)


def _depth_of(spec):
    from .mapping import depth_candidates
    return depth_candidates(len(spec.blocks))[0]


def _se_ratio(spec):
    for r in [12] + list(range(2, 65)):
        if all(b.se_channels == b.dw_channels // r for b in spec.blocks if b.se_channels):
            return r
    raise ValueError('no integer SE ratio reproduces %s' % spec.name)


def _lite_args(spec):
    kernels = [b.kernel for b in spec.blocks]
    return dict(multiplier=_width_of(spec), kernel_conf=''.join(str(kernels[i]) for i in (0, 1, 3, 5, 8, 11)))


def randomize_(model, seed=0):
    """Deterministic random weights with non-trivial BN statistics and affine parameters, eval mode."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
            elif isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model.eval()


def state_dict_in_layout(model, spec, classes, layout):
    """The reference model's state_dict in ``layout`` ('timm', 'official', 'official_lite').

    Official names come from :mod:`.official_listing` (a rename rule checked against the official listing of the
    released widths), never from :func:`param_table`: the checkpoints that test the converter must not be written
    through the converter's own table."""
    sd = model.state_dict()
    if layout == 'timm' and not spec.lite:
        return sd
    out = sd if spec.lite else timm_to_official(sd)
    if classes == 1000:
        check_listing(out, spec.name)
    return out


def load_into_reference(model, state_dict, spec, classes, layout):
    """Load a (numpy or torch) state_dict of ``layout`` into the reference model, strictly."""
    import torch
    sd = OrderedDict((k, torch.as_tensor(np.asarray(v))) for k, v in state_dict.items())
    if layout == 'official' and not spec.lite:
        sd = official_to_timm(sd, list(model.state_dict()))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing or unexpected:
        raise ValueError('reference model did not take the checkpoint: missing %s, unexpected %s'
                         % (missing[:5], unexpected[:5]))
    return model.eval()


def to_numpy_state_dict(sd):
    return OrderedDict((k, v.detach().cpu().numpy()) for k, v in sd.items())
