"""What one benchmark child process builds and times: the MXNet and PyTorch configurations, the timed repeats
(sequential, or one per request of the parent), and the per-operator profile.

The parent runs this file as a script (``python .../child.py SPEC``), not as a module of the package: a timm
child then never imports rexnet_gluon (and with it MXNet), so its peak RSS and threads are PyTorch's alone, as
when it ran as ``scripts/benchmark.py --child``. So the top level imports only the standard library, and the
package is imported with absolute names inside the MXNet builders.
"""
import importlib.util
import json
import os
import sys
import time

__all__ = ['CHILD_SCRIPT', 'ALL_CONFIGS', 'TRAIN_CONFIGS', 'RUNTIME_CONFIGS', 'FAST_ENV', 'load_sibling',
           'parse_width', 'timm_model', 'child_main', ]

CHILD_SCRIPT = os.path.abspath(__file__)   # what the parent runs: python CHILD_SCRIPT SPEC


def load_sibling(name):
    """A module of this folder loaded by its path, not through the package (which would import MXNet)."""
    spec = importlib.util.spec_from_file_location('rexnet_benchmark_' + name,
                                                  os.path.join(os.path.dirname(CHILD_SCRIPT), name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNTIMES = load_sibling('runtimes')
RUNTIME_CONFIGS = tuple(RUNTIMES.RUNTIME_CONFIGS)    # ov_fp32, ov_int8, ort_fp32, ov_timm
ALL_CONFIGS = ['mx_imperative', 'mx_hybrid', 'mx_fused', 'mx_fast', 'mx_fast_threaded', 'mx_bf16', 'mx_int8',
               'mx_fast_int8', *RUNTIME_CONFIGS, 'timm_eager', 'timm_cl', 'timm_compile', 'mx_train', 'timm_train']
TRAIN_CONFIGS = ('mx_train', 'timm_train')
# fast.RECOMMENDED_ENV but OMP_NUM_THREADS, which --threads sets for every configuration
FAST_ENV = {'MXNET_ENGINE_TYPE': 'NaiveEngine', 'MXNET_USE_OPERATOR_TUNING': '0'}


def _cpu_sample():
    with open('/proc/stat') as f:
        a = [int(v) for v in f.readline().split()[1:]]
    t = os.times()
    return sum(a[:8]), a[3] + a[4], (t.user + t.system) * os.sysconf('SC_CLK_TCK')


def _foreign(s0, s1):
    """Fraction of all CPUs used by other processes between two samples."""
    total = s1[0] - s0[0]
    busy = total - (s1[1] - s0[1]) - (s1[2] - s0[2])
    return max(0.0, busy / total) if total > 0 else 0.0


def _wait_quiet(limit, timeout):
    start = time.time()
    while True:
        s0 = _cpu_sample()
        time.sleep(0.5)
        f = _foreign(s0, _cpu_sample())
        if f < limit or time.time() - start > timeout:
            return f


def _repeat(step, n_images, iters, rewarm, limit, max_retries):
    """One timed repeat: (img/s, foreign CPU share, retries). A repeat during which other processes used more than
    ``limit`` of the CPUs is re-run after waiting for a quiet machine (at most ``max_retries`` times)."""
    retries = 0
    while True:
        for _ in range(rewarm):
            step()
        s0 = _cpu_sample()
        t = time.perf_counter()
        for _ in range(iters):
            step()
        dt = time.perf_counter() - t
        f = _foreign(s0, _cpu_sample())
        if f <= limit or retries >= max_retries:
            return n_images * iters / dt, f, retries
        retries += 1
        _wait_quiet(limit, 30)


def _summary(rates, foreign, retries):
    s = sorted(rates)
    return dict(median=s[len(s) // 2], min=s[0], max=s[-1], repeats=len(s), retries=retries,
                foreign_max=max(foreign), rates=list(rates))


def parse_width(w):
    w = str(w)
    return (True, float(w[4:])) if w.startswith('lite') else (False, float(w))


def _generated_images(n, size, seed):
    """Smooth random patterns (low-resolution noise, bilinearly upsampled) plus pixel noise, ImageNet-normalised."""
    import numpy as np
    rs = np.random.RandomState(seed)
    lo = rs.rand(n, 3, 7, 7)
    idx = np.linspace(0, 6, size)
    i0 = np.floor(idx).astype(int).clip(0, 5)
    fr = idx - i0
    a = lo[:, :, i0] * (1 - fr)[None, None, :, None] + lo[:, :, i0 + 1] * fr[None, None, :, None]
    img = a[:, :, :, i0] * (1 - fr) + a[:, :, :, i0 + 1] * fr
    img = img + 0.1 * rs.randn(*img.shape)
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    return ((img - mean) / std).astype('float32')


def _mx_net(width, seed=0):
    import mxnet as mx
    from rexnet_gluon.model import ReXNetV1, ReXNetV1Lite
    from rexnet_gluon.convert.parity import randomize_gluon_
    lite, w = parse_width(width)
    net = ReXNetV1Lite(w) if lite else ReXNetV1(w)
    net.initialize(ctx=mx.cpu())
    return randomize_gluon_(net, seed)


def _child_mx(cfg, a):
    import numpy as np
    import mxnet as mx
    from rexnet_gluon.deploy import fast
    bs, size = cfg['batch'], a['size']
    net = _mx_net(cfg['width'])
    x = mx.nd.array(np.random.RandomState(0).randn(bs, 3, size, size).astype('float32'))
    out = {}
    name = cfg['config']
    if name == 'mx_train':
        from mxnet import autograd, gluon
        net.hybridize(static_alloc=True, static_shape=True)
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9, 'wd': 1e-5})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        y = mx.nd.array(np.random.RandomState(1).randint(0, 1000, size=bs))

        def step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(bs)
            loss.wait_to_read()
            mx.nd.waitall()
        return step, out
    if name == 'mx_imperative':
        block = net
    elif name == 'mx_hybrid':
        block = net
        block.hybridize(static_alloc=True, static_shape=True)
    elif name == 'mx_fused':
        block = net
        block.hybridize(static_alloc=True, static_shape=True)
        block(x)
        block.optimize_for(x, backend='MKLDNN', static_alloc=True, static_shape=True)
    elif name in ('mx_fast', 'mx_fast_threaded'):
        block = fast.prepare(net, example=x)
    elif name == 'mx_bf16':
        from mxnet.contrib import amp
        net.hybridize(static_alloc=True, static_shape=True)
        net(x)
        block = amp.convert_hybrid_block(net, target_dtype='bfloat16', ctx=mx.cpu())
        block.hybridize(static_alloc=True, static_shape=True)
    elif name == 'mx_int8':
        from mxnet.contrib.quantization import quantize_net
        calib = mx.nd.array(_generated_images(a['calib'], size, 1))
        it = mx.io.NDArrayIter(calib, batch_size=min(8, a['calib']), data_name='data')
        block = quantize_net(net, quantized_dtype='int8', calib_mode='naive', calib_data=it,
                             num_calib_examples=a['calib'], ctx=mx.cpu())
        block.hybridize(static_alloc=True, static_shape=True)
    elif name == 'mx_fast_int8':
        calib = mx.nd.array(_generated_images(a['calib'], size, 1))
        block = fast.quantize(fast.prepare(net, example=x, fuse=False), calib)
    else:
        raise ValueError(name)

    def check():
        """After timing (so the RSS is the configuration's own): logits vs the plain hybridized network."""
        ref_net = _mx_net(cfg['width'])
        ref_net.hybridize(static_alloc=True, static_shape=True)
        test = mx.nd.array(_generated_images(32, size, 2))
        ref = mx.nd.concat(*[ref_net(test[i:i + 8]).copy() for i in range(0, 32, 8)], dim=0)
        got = mx.nd.concat(*[block(test[i:i + 8]).copy() for i in range(0, 32, 8)], dim=0).astype('float32')
        ref_x = ref_net(x)
        return dict(top1_agreement=float((got.argmax(axis=1) == ref.argmax(axis=1)).mean().asscalar()),
                    max_abs_diff=float((block(x).astype('float32') - ref_x).abs().max().asscalar()),
                    logit_scale=float(ref_x.abs().max().asscalar()))
    out['check'] = check

    def step():
        block(x).wait_to_read()
    return step, out


def timm_model(width):
    """timm's RexNet of ``width``, seeded weights and random BatchNorm statistics, in eval mode; and the seeded
    generator that made them (the timm rows draw their input from it)."""
    import torch
    from timm.models.rexnet import RexNet
    lite, w = parse_width(width)
    if lite:
        raise ValueError('timm has no ReXNet-lite')
    torch.manual_seed(0)
    model = RexNet(width_mult=w)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval(), g


def _child_torch(cfg, a):
    import torch
    torch.set_num_threads(a['threads'])
    model, g = timm_model(cfg['width'])
    bs, size = cfg['batch'], a['size']
    x = torch.randn(bs, 3, size, size, generator=g)
    name = cfg['config']
    if name == 'timm_train':
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)
        y = torch.randint(0, 1000, (bs,), generator=g)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        return step, {}
    if name == 'timm_cl':
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    elif name == 'timm_compile':
        model = torch.compile(model)

    def step():
        with torch.no_grad():
            model(x)
    t = time.time()
    step()
    return step, {'first_call_s': time.time() - t}


def _child_runtime(cfg, a):
    import numpy as np
    x = np.random.RandomState(0).randn(cfg['batch'], 3, a['size'], a['size']).astype('float32')   # as _child_mx
    return RUNTIMES.build_runtime(cfg, a, x)


def _profile_ops(step, iters):
    """Per-operator wall time (mx.profiler aggregate, ms per iteration), largest first."""
    import mxnet as mx
    step()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True, filename=os.devnull)
    mx.profiler.set_state('run')
    t = time.perf_counter()
    for _ in range(iters):
        step()
    wall = (time.perf_counter() - t) / iters
    mx.profiler.set_state('stop')
    text = mx.profiler.dumps(reset=True)
    rows, section = [], None
    for line in text.splitlines():
        if line.strip() in ('operator', 'MXNET_C_API', 'Device Storage', 'memory'):
            section = line.strip()
            continue
        parts = line.split()
        if section != 'operator' or len(parts) < 6:
            continue
        try:
            count, total = int(parts[-5]), float(parts[-4])
        except ValueError:
            continue
        rows.append(dict(op=' '.join(parts[:-5]), calls=count / iters, ms=total / iters))
    # the NaiveEngine records each operator twice (push and run): halve when the sum exceeds the wall time
    total = sum(r['ms'] for r in rows)
    if total > 1.5 * wall * 1e3:
        for r in rows:
            r['ms'] /= 2
            r['calls'] /= 2
    rows.sort(key=lambda r: -r['ms'])
    return dict(wall_ms=wall * 1e3, ops=rows)


def _peak_rss_mib():
    """This process's peak RSS: VmHWM, which starts afresh at exec. Not ru_maxrss: Linux carries the parent's peak
    over to a child, so every row lighter than the parent (the OpenVINO ones: 253 MiB under an MXNet parent,
    measured) read the parent's figure."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1024.0
    except (OSError, StopIteration):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_requests():
    """The parent's requests of a served child: one per ``RUN`` line on stdin, until ``END`` (or EOF)."""
    for line in sys.stdin:
        if line.strip() != 'RUN':
            return
        yield line


def child_main(spec):
    """Build the configuration, warm up, then either time ``repeats`` repeats at once, or (``serve``) print READY
    and time one repeat per ``RUN`` line on stdin until ``END``; the parent interleaves the configurations."""
    cfg = json.loads(spec)
    a = cfg['args']
    t0 = time.time()
    try:
        if a['wait_quiet']:
            _wait_quiet(a['max_foreign'], 120)
        build = _child_torch if cfg['config'].startswith('timm') else \
            _child_runtime if cfg['config'] in RUNTIME_CONFIGS else _child_mx
        step, extra = build(cfg, a)
        train = cfg['config'] in TRAIN_CONFIGS
        bs = cfg['batch']
        iters = a['iters'] or (2 if train else (20 if bs == 1 else max(1, 64 // bs)))
        warmup = a['warmup'] if a['warmup'] is not None else (2 if train else (10 if bs == 1 else 3))
        for _ in range(warmup):
            step()
        if cfg.get('profile'):
            res = dict(profile=_profile_ops(step, iters), ok=True, iters=iters)
            res['rss_mib'] = _peak_rss_mib()
            print('RESULT ' + json.dumps(res), flush=True)
            return
        limit = a['max_foreign'] if a['wait_quiet'] else 1.0
        rewarm = max(1, warmup // 5)   # caches went cold while the other configurations ran
        serve = bool(cfg.get('serve'))
        if serve:
            print('READY', flush=True)
            turns = _run_requests()
        else:
            if a['wait_quiet']:
                _wait_quiet(a['max_foreign'], 60)
            turns = range(a['repeats'])
        rates, foreign, retries = [], [], 0
        for _ in turns:
            r, f, n = _repeat(step, bs, iters, rewarm if serve else 0, limit, 2)
            rates.append(r)
            foreign.append(f)
            retries += n
            if serve:
                print('RATE %f' % r, flush=True)
        res = _summary(rates, foreign, retries)
        res['rss_mib'] = _peak_rss_mib()
        check = extra.pop('check', None)
        res.update(extra)
        if check is not None:
            res.update(check())
        res['iters'] = iters
        res['ok'] = True
    except Exception as e:   # reported in the table, the run goes on
        import traceback
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ''
        res = dict(ok=False, error='%s: %s' % (type(e).__name__, first),
                   traceback=traceback.format_exc()[-2000:])
    res.setdefault('rss_mib', _peak_rss_mib())
    res['seconds'] = time.time() - t0
    print('RESULT ' + json.dumps(res), flush=True)


if __name__ == '__main__':
    # sys.path[0] is this file's folder: put the folder holding rexnet_gluon there instead (a checkout or
    # site-packages), so that the MXNet builders import the package this file belongs to.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(CHILD_SCRIPT))))
    child_main(sys.argv[1])
