"""Numerical parity between a converted Gluon ReXNet and its PyTorch reference.

Both run in eval mode on the same seeded N(0, 1) batch; we report the largest absolute logit difference,
the logit scale, and whether the top-1 classes agree. fp64 runs show whether the graphs are identical
(differences ~1e-14) rather than merely close (fp32 kernel-order rounding, ~1e-5).
"""
from collections import namedtuple

import numpy as np

__all__ = ['ParityResult', 'TOLERANCE', 'allowed_diff', 'gluon_net_from_arrays', 'check_parity', 'randomize_gluon_']

ParityResult = namedtuple('ParityResult', 'dtype max_abs_diff logit_scale top1_agreement tolerance ok')

# Max |logit difference| allowed at a logit scale of 15; scaled linearly for larger logits.
TOLERANCE = {'float32': 1e-4, 'float64': 1e-10}


def allowed_diff(scale, dtype='float32'):
    """The parity rule: the largest |logit difference| allowed when the logits reach ``scale``."""
    return TOLERANCE[dtype] * max(1.0, scale / 15.0)


def gluon_net_from_arrays(arrays, spec, classes, dtype='float32', ctx=None, hybridize=True):
    """A ReXNet holding ``arrays`` (name -> array), or the parameters of a .params file if it is a path."""
    import mxnet as mx
    from ..model import ReXNet
    ctx = ctx or mx.cpu()
    net = ReXNet(spec, classes)
    if isinstance(arrays, str):
        net.load_parameters(arrays, ctx=ctx)   # the user's path: exactly what they will load
        if dtype != 'float32':
            net.cast(dtype)
    else:
        net.initialize(ctx=ctx)
        if dtype != 'float32':
            net.cast(dtype)
        params = net._collect_params_with_prefix()
        for name, value in arrays.items():
            params[name].set_data(mx.nd.array(value, ctx=ctx, dtype=dtype))
    if hybridize:
        net.hybridize(static_alloc=True, static_shape=True)
    return net


def check_parity(state_dict, layout, arrays, spec, classes, dtypes=('float32', 'float64'), batch=2,
                 size=224, seed=0):
    """Compare the Gluon net built from ``arrays`` (dict or .params path) with the PyTorch reference
    loaded from ``state_dict`` (numpy arrays in ``layout``)."""
    import mxnet as mx
    import torch
    from .torch_reference import load_into_reference, reference_model

    x = np.random.RandomState(seed).standard_normal((batch, 3, size, size))
    results = []
    for dtype in dtypes:
        ref = load_into_reference(reference_model(spec, classes), state_dict, spec, classes, layout)
        if dtype == 'float64':
            ref = ref.double()
        with torch.no_grad():
            expected = ref(torch.from_numpy(x.astype(dtype))).numpy().astype(np.float64)
        del ref
        net = gluon_net_from_arrays(arrays, spec, classes, dtype)
        got = net(mx.nd.array(x, dtype=dtype)).asnumpy().astype(np.float64)
        diff = float(np.abs(got - expected).max())
        scale = float(np.abs(expected).max())
        agree = float((got.argmax(1) == expected.argmax(1)).mean())
        tol = allowed_diff(scale, dtype)
        results.append(ParityResult(dtype, diff, scale, agree, tol, bool(diff <= tol and agree == 1.0)))
    return results


def randomize_gluon_(net, seed=0):
    """Seeded random weights WITH random BN statistics and affine parameters (as in a trained network),
    set in place on an initialised Gluon ReXNet; the Gluon counterpart of torch_reference.randomize_."""
    import mxnet as mx
    rs = np.random.RandomState(seed)
    for name, p in sorted(net.collect_params().items()):
        shape = p.shape
        if name.endswith('weight'):
            v = rs.randn(*shape) * (2.0 / max(1, int(np.prod(shape[1:])))) ** 0.5
        elif name.endswith(('bias', 'beta', 'running_mean')):
            v = rs.randn(*shape) * 0.1
        elif name.endswith(('gamma', 'running_var')):
            v = rs.rand(*shape) + 0.5
        else:
            raise ValueError('randomize_gluon_: unexpected parameter %s' % name)
        p.set_data(mx.nd.array(v.astype('float32')))
    return net
