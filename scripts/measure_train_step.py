#!/usr/bin/env python
"""What a training step costs under each training semantics choice, measured interleaved (this machine's speed
drifts: configurations alternate within each round, and the table reports medians and ratios to the first).

    python scripts/measure_train_step.py --model rexnet_1.0x --batch 16 --size 128 --rounds 5 --steps 5

Configurations: BatchNorm running variance (PyTorch's unbiased update vs MXNet's biased), the Swish op
(x * sigmoid(x) vs oneDNN's Activation('sigmoid')) and the optimizer (nag vs PyTorch's rule, nag_torch).
A step is forward + backward + trainer.step of the hybridized (static_alloc) network, as scripts/train_imagenet.py
--mode hybrid runs it, on the CPU. Writes the table as Markdown with --markdown FILE.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too


def _configs(optimizers):
    base = dict(bn_running_var='biased', swish_op='sigmoid', optimizer='nag')
    out = [('MXNet semantics (biased BN variance, sigmoid, nag)', base),
           ('unbiased BN variance', dict(base, bn_running_var='unbiased'))]
    for name in optimizers:
        out.append(('unbiased + optimizer %s' % name, dict(base, bn_running_var='unbiased', optimizer=name)))
    out.append(('unbiased + oneDNN Swish', dict(base, bn_running_var='unbiased', swish_op='activation')))
    return out


def _step_fn(model, cfg, batch, size):
    import mxnet as mx
    from rexnet_gluon.zoo import get_model
    net = get_model(model, classes=1000, bn_running_var=cfg['bn_running_var'], swish_op=cfg['swish_op'])
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = mx.gluon.Trainer(net.collect_params(), cfg['optimizer'],
                               dict(learning_rate=0.01, momentum=0.9, wd=1e-5))
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    x = mx.nd.random.normal(shape=(batch, 3, size, size))
    y = mx.nd.array(list(range(batch)))

    def step():
        with mx.autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(batch)
        loss.wait_to_read()
    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', default='rexnet_1.0x')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--steps', type=int, default=5, help='timed steps per configuration per round')
    p.add_argument('--markdown', metavar='FILE')
    args = p.parse_args(argv)
    import mxnet as mx
    import rexnet_gluon.train  # noqa: F401  (registers the training optimizers)
    configs = _configs(['nag_torch'])
    steps = []
    for _, cfg in configs:
        fn = _step_fn(args.model, cfg, args.batch, args.size)
        for _ in range(2):
            fn()                       # warm-up: graph build, oneDNN primitives
        steps.append(fn)
    times = [[] for _ in configs]
    for _ in range(args.rounds):
        for i, fn in enumerate(steps):
            mx.nd.waitall()
            tic = time.perf_counter()
            for _ in range(args.steps):
                fn()
            mx.nd.waitall()
            times[i].append((time.perf_counter() - tic) / args.steps)
    base = statistics.median(times[0])
    lines = ['%s, batch %d at %d px, CPU, %d rounds x %d steps, interleaved' % (
        args.model, args.batch, args.size, args.rounds, args.steps), '',
        '| configuration | median step (ms) | ratio to MXNet semantics |', '|---|---|---|']
    for (name, _), t in zip(configs, times):
        med = statistics.median(t)
        lines.append('| %s | %.1f | %.3f |' % (name, 1000 * med, med / base))
    print('\n'.join(lines))
    if args.markdown:
        from rexnet_gluon.utils.fileio import atomic_write_text
        atomic_write_text(args.markdown, '\n'.join(lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
