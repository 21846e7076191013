#!/usr/bin/env python
"""What the plain network's inference costs under each hybridization and Swish choice, measured interleaved (this
machine's speed drifts: configurations alternate within each round; the table reports medians and the median of
the per-round ratios to plain ``hybridize(static_alloc=False, static_shape=False)``).

    python scripts/measure_plain_inference.py --batch 1 --rounds 7
    python scripts/measure_plain_inference.py --batch 32 --rounds 5

Configurations (ReXNet-1.0x, the same random weights and BatchNorm statistics, 224 px, CPU): plain hybridize without
static memory, ``hybridize()`` (ReXNet's default: static_alloc + static_shape), and the same with Swish as
``x * Activation(x, 'sigmoid')`` (oneDNN, ``swish_op='activation'``). Each row also gives its max |logit diff| to the
first: 0 means bit-identical.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too

CONFIGS = [('hybridize(static_alloc=False, static_shape=False)', {}, dict(static_alloc=False, static_shape=False)),
           ('hybridize() (default: static_alloc + static_shape)', {}, {}),
           ('hybridize() + oneDNN Swish', dict(swish_op='activation'), {})]


def _net(weights, size, net_kwargs, hybrid_kwargs):
    import mxnet as mx
    from rexnet_gluon import ReXNetV1
    net = ReXNetV1(1.0, **net_kwargs)
    net.initialize()
    for p, value in zip(net.collect_params().values(), weights):
        p.set_data(value)
    net.hybridize(**hybrid_kwargs)
    net(mx.nd.zeros((1, 3, size, size))).wait_to_read()
    return net


def _weights(size):
    import mxnet as mx
    from rexnet_gluon import ReXNetV1
    mx.random.seed(0)
    probe = ReXNetV1(1.0)
    probe.initialize()
    probe(mx.nd.zeros((1, 3, size, size)))
    # random weights; gammas and variances near 1 so activations neither vanish nor explode
    return [mx.nd.random.uniform(-0.1, 0.1, p.shape) + (1 if p.name.endswith(('gamma', 'running_var')) else 0)
            for p in probe.collect_params().values()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--iters', type=int, default=None, help='forward passes per timing (default 10 at batch 1, else 2)')
    args = p.parse_args(argv)
    if args.batch < 1 or args.rounds < 1 or args.size < 32:
        p.error('--batch and --rounds must be >= 1, --size >= 32')
    import mxnet as mx
    import numpy as np
    iters = args.iters or (10 if args.batch == 1 else 2)
    weights = _weights(args.size)
    nets = [_net(weights, args.size, nk, hk) for _, nk, hk in CONFIGS]
    x = mx.nd.array(np.random.RandomState(0).randn(args.batch, 3, args.size, args.size).astype('float32'))
    ref = nets[0](x).asnumpy()
    diffs = [float(np.abs(n(x).asnumpy() - ref).max()) for n in nets]
    rates = [[] for _ in nets]
    for r in range(args.rounds):
        for i in [(r + k) % len(nets) for k in range(len(nets))]:   # rotated order
            nets[i](x).wait_to_read()
            t = time.perf_counter()
            for _ in range(iters):
                nets[i](x).wait_to_read()
            rates[i].append(args.batch * iters / (time.perf_counter() - t))
    print('| configuration (batch %d, %d px) | img/s median | ratio to the first | max abs diff to the first |'
          % (args.batch, args.size))
    print('|---|---|---|---|')
    for (name, _, _), rate, diff in zip(CONFIGS, rates, diffs):
        ratio = statistics.median(a / b for a, b in zip(rate, rates[0]))
        print('| %s | %.1f | %.2f | %.1e |' % (name, statistics.median(rate), ratio, diff))
    return 0


if __name__ == '__main__':
    sys.exit(main())
