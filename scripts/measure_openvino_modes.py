#!/usr/bin/env python
"""How OpenVINO should run a ReXNet IR on this CPU: dynamic vs static batch, one LATENCY request vs the batch split
over THROUGHPUT streams. Measured interleaved in one process (configurations alternate within each round; the
table gives medians and the median of the per-round ratios to the first), which is what
``rexnet_gluon/deploy/openvino_runner.py`` was chosen by.

    python scripts/measure_openvino_modes.py --batch 1 --rounds 6
    python scripts/measure_openvino_modes.py --batch 32 --rounds 4

The IR is ``export --format openvino`` of a seeded random ReXNet-1.0x (dynamic batch, fp32), compiled f32.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout too


def _ir(folder, size):
    import mxnet as mx
    from rexnet_gluon import ReXNetV1
    from rexnet_gluon.convert.parity import randomize_gluon_
    from rexnet_gluon.deploy.export import export_openvino
    from rexnet_gluon.zoo import get_model_info
    net = ReXNetV1(1.0)
    net.initialize(ctx=mx.cpu())
    randomize_gluon_(net, seed=0)
    rep = export_openvino(net, os.path.join(folder, 'rexnet_1.0x'), size,
                          preprocess=get_model_info('rexnet_1.0x').preprocess)
    if not rep.ok:
        sys.exit('the OpenVINO export failed its check:\n' + rep.summary())
    return rep.files[0]


def _configs(path, batch, size):
    import numpy as np
    import openvino as ov
    core = ov.Core()
    base = core.read_model(path)

    def compiled(n, hint):
        model = base.clone()
        if n:
            model.reshape({model.input(0): ov.PartialShape([n, 3, size, size])})
        return core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': hint})

    def sync(c):
        request = c.create_infer_request()
        return lambda x: request.infer({0: x})

    def split(c, n):
        queue = ov.AsyncInferQueue(c, n)

        def run(x):
            for chunk in np.array_split(x, n):
                queue.start_async({0: chunk})
            queue.wait_all()
        return run
    out = [('dynamic batch, LATENCY, 1 sync request', sync(compiled(None, 'LATENCY'))),
           ('static batch, LATENCY, 1 sync request (the engine)', sync(compiled(batch, 'LATENCY')))]
    if batch > 1:
        dyn = compiled(None, 'THROUGHPUT')
        streams = dyn.get_property('OPTIMAL_NUMBER_OF_INFER_REQUESTS')
        out += [('dynamic batch, THROUGHPUT, split over %d requests' % streams, split(dyn, streams)),
                ('static batch / %d, THROUGHPUT, split over %d requests' % (streams, streams),
                 split(compiled(-(-batch // streams), 'THROUGHPUT'), streams))]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--iters', type=int, default=None, help='runs per timing (default 20 at batch 1, else 3)')
    args = p.parse_args(argv)
    if args.batch < 1 or args.rounds < 1 or args.size < 32:
        p.error('--batch and --rounds must be >= 1, --size >= 32')
    import numpy as np
    iters = args.iters or (20 if args.batch == 1 else 3)
    with tempfile.TemporaryDirectory(prefix='rexnet_ov_modes.') as folder:
        configs = _configs(_ir(folder, args.size), args.batch, args.size)
    x = np.random.RandomState(0).rand(args.batch, 3, args.size, args.size).astype(np.float32)
    for _, run in configs:                       # warm-up
        for _ in range(3):
            run(x)
    rates = [[] for _ in configs]
    for r in range(args.rounds):
        for i in [(r + k) % len(configs) for k in range(len(configs))]:   # rotated order
            t = time.perf_counter()
            for _ in range(iters):
                configs[i][1](x)
            rates[i].append(args.batch * iters / (time.perf_counter() - t))
    print('| OpenVINO mode (batch %d, %d px) | img/s median | ratio to the first |' % (args.batch, args.size))
    print('|---|---|---|')
    for (name, _), rate in zip(configs, rates):
        print('| %s | %.1f | %.2f |' % (name, statistics.median(rate),
                                        statistics.median(a / b for a, b in zip(rate, rates[0]))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
