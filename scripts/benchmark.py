#!/usr/bin/env python
"""CPU speed of rexnet_gluon (MXNet) against timm's rexnet (PyTorch): inference img/s and peak memory.

    python scripts/benchmark.py                                   # 1.0x, batch 1 and 32, every configuration
    python scripts/benchmark.py --widths 1.0,1.5,lite1.0 --batches 1,8,32 --torch-compile
    python scripts/benchmark.py --configs mx_fast,timm_cl --batches 1 --repeats 3 --output-dir /tmp/bench

Every (configuration, width, batch) runs in a subprocess of its own (so its peak RSS, the child's ru_maxrss, is
its own); the parent only schedules and aggregates. A child waits for the machine to be quiet, builds the network
and warms up. Then, by default, the parent times the configurations of one width and batch in interleaved rounds:
each round asks every child for one repeat of ``--iters`` forward passes (MXNet: until ``wait_to_read``; PyTorch:
``torch.no_grad`` + eval), in an order rotated from round to round. On a shared machine whose speed drifts over
minutes (seen here within one hour: the fast path's batch-1 median from 96 to 139 img/s, timm's from 52 to 76)
this keeps the comparison fair: the ratios are the medians of the per-round ratios. ``--sequential`` times one
configuration after the other instead (one process alive at a time). Reported: median / min / max img/s. Repeats
during which other processes used more than ``--max-foreign`` of the CPUs are re-run after a wait (at most twice
each), and the worst foreign load of the kept repeats is reported.

Configurations (``--configs``, default: all but timm_compile, which ``--torch-compile`` adds):

==================  ====================================================================================
mx_imperative       ReXNet, no hybridize
mx_hybrid           hybridize(static_alloc=True, static_shape=True)
mx_fused            + net.optimize_for(x, backend='MKLDNN') (oneDNN subgraph fusion)
mx_fast             rexnet_gluon.deploy.fast.prepare(net) with fast.RECOMMENDED_ENV (NaiveEngine, no op tuning)
mx_fast_threaded    the same graph with MXNet's default engine and environment
mx_bf16             mx.contrib.amp.convert_hybrid_block(net, 'bfloat16'), hybridized
mx_int8             mx.contrib.quantization.quantize_net(net, quantized_dtype='int8', calib_mode='naive')
mx_fast_int8        rexnet_gluon.deploy.fast.quantize(fast graph), int8, naive calibration
timm_eager          timm rexnet_100-style model (same width), eval, NCHW
timm_cl             the same, channels_last
timm_compile        torch.compile (inductor) of the NCHW model
mx_train            one training step: forward + softmax CE + backward + SGD (momentum 0.9), BN in train mode
timm_train          the same in PyTorch
==================  ====================================================================================

Weights are random (seeded) with random BatchNorm statistics; calibration and agreement images are generated
(smooth random patterns). The MXNet rows also report max |logit diff| to the plain hybridized network and,
for the reduced-precision rows, the top-1 agreement with it on 32 held-out generated images.
Outputs: Markdown + JSON + PNG in ``--output-dir``; the table is printed with the machine and the command line.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ALL_CONFIGS = ['mx_imperative', 'mx_hybrid', 'mx_fused', 'mx_fast', 'mx_fast_threaded', 'mx_bf16', 'mx_int8',
               'mx_fast_int8', 'timm_eager', 'timm_cl', 'timm_compile', 'mx_train', 'timm_train']
TRAIN_CONFIGS = ('mx_train', 'timm_train')
# fast.RECOMMENDED_ENV but OMP_NUM_THREADS, which --threads sets for every configuration
FAST_ENV = {'MXNET_ENGINE_TYPE': 'NaiveEngine', 'MXNET_USE_OPERATOR_TUNING': '0'}
LABELS = {'mx_imperative': 'MXNet imperative', 'mx_hybrid': 'MXNet hybridized',
          'mx_fused': 'MXNet hybrid + oneDNN fusion',
          'mx_fast': 'MXNet fast path (fast.py)', 'mx_fast_threaded': 'fast path, default engine',
          'mx_bf16': 'MXNet bfloat16 (amp)', 'mx_int8': 'MXNet INT8 (quantize_net)',
          'mx_fast_int8': 'fast path INT8', 'timm_eager': 'timm eager NCHW', 'timm_cl': 'timm channels_last',
          'timm_compile': 'timm torch.compile', 'mx_train': 'MXNet train step', 'timm_train': 'timm train step'}


# ----------------------------------------------------------------------------------------------------------------
# child side
# ----------------------------------------------------------------------------------------------------------------

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


def _parse_width(w):
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
    lite, w = _parse_width(width)
    net = ReXNetV1Lite(w) if lite else ReXNetV1(w)
    net.initialize(ctx=mx.cpu())
    return randomize_gluon_(net, seed)


def _child_mx(cfg, a):
    import numpy as np
    import mxnet as mx
    from rexnet_gluon import fast
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


def _child_torch(cfg, a):
    import torch
    from timm.models.rexnet import RexNet
    torch.set_num_threads(a['threads'])
    lite, w = _parse_width(cfg['width'])
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
    model.eval()
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


def _run_requests():
    """The parent's requests of a served child: one per ``RUN`` line on stdin, until ``END`` (or EOF)."""
    for line in sys.stdin:
        if line.strip() != 'RUN':
            return
        yield line


def child_main(spec):
    """Build the configuration, warm up, then either time ``repeats`` repeats at once, or (``serve``) print READY
    and time one repeat per ``RUN`` line on stdin until ``END``; the parent interleaves the configurations."""
    import resource
    cfg = json.loads(spec)
    a = cfg['args']
    t0 = time.time()
    try:
        if a['wait_quiet']:
            _wait_quiet(a['max_foreign'], 120)
        build = _child_torch if cfg['config'].startswith('timm') else _child_mx
        step, extra = build(cfg, a)
        train = cfg['config'] in TRAIN_CONFIGS
        bs = cfg['batch']
        iters = a['iters'] or (2 if train else (20 if bs == 1 else max(1, 64 // bs)))
        warmup = a['warmup'] if a['warmup'] is not None else (2 if train else (10 if bs == 1 else 3))
        for _ in range(warmup):
            step()
        if cfg.get('profile'):
            res = dict(profile=_profile_ops(step, iters), ok=True, iters=iters)
            res['rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
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
        res['rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
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
    res.setdefault('rss_mib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    res['seconds'] = time.time() - t0
    print('RESULT ' + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------------------------------
# parent side
# ----------------------------------------------------------------------------------------------------------------

def _machine(threads):
    info = {'python': platform.python_version(), 'platform': platform.platform(), 'logical_cpus': os.cpu_count(),
            'threads': threads}
    try:
        with open('/proc/cpuinfo') as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith('model name'):
                info['cpu'] = line.split(':', 1)[1].strip()
                break
        flags = next((line.split(':', 1)[1].split() for line in text.splitlines() if line.startswith('flags')), [])
        info['isa'] = ' '.join(f for f in ('avx2', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16')
                               if f in flags)
    except OSError:
        pass
    probe = ("import mxnet as mx, json; f = mx.runtime.Features(); "
             "x = mx.nd.ones((1, 16, 4, 4)); mx.nd.Convolution(x, mx.nd.ones((16, 16, 1, 1)), kernel=(1, 1), "
             "num_filter=16, no_bias=True).wait_to_read(); "
             "print('MXINFO', json.dumps({'mxnet': mx.__version__, 'mkldnn': f.is_enabled('MKLDNN'), "
             "'blas': [k for k in ('BLAS_OPEN', 'BLAS_MKL') if f.is_enabled(k)]}))")
    try:
        p = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, DNNL_VERBOSE='1'))
        for line in p.stdout.splitlines():
            if line.startswith('MXINFO'):
                info.update(json.loads(line[7:]))
            elif line.startswith('dnnl_verbose,info,oneDNN'):
                info['onednn'] = line.split(',')[2].split()[1]
            elif line.startswith('dnnl_verbose,info,cpu,isa:'):
                info['onednn_isa'] = line.split(':', 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        p = subprocess.run([sys.executable, '-c', 'import torch, timm; print(torch.__version__, timm.__version__)'],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            info['torch'], info['timm'] = p.stdout.split()[-2:]
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def _torch_available():
    try:
        p = subprocess.run([sys.executable, '-c', 'import torch, timm'], capture_output=True, timeout=120)
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _child_env(threads, extra_env):
    env = dict(os.environ)
    for k in ('MXNET_ENGINE_TYPE', 'MXNET_USE_OPERATOR_TUNING', 'DNNL_VERBOSE', 'MKLDNN_VERBOSE'):
        env.pop(k, None)
    env.update({'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads), 'PYTHONWARNINGS': 'ignore'})
    env.update(extra_env)
    return env


def _child_cmd(cfg):
    return [sys.executable, os.path.abspath(__file__), '--child', json.dumps(cfg)]


def _parse_result(stdout, stderr, returncode):
    for line in stdout.splitlines()[::-1]:
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    tail = (stderr or stdout).strip().splitlines()[-3:]
    return dict(ok=False, error='child exited with %d: %s' % (returncode, ' | '.join(tail)[-400:]))


def _run_child(cfg, threads, extra_env, timeout):
    """One configuration in one process, all its repeats in a row (``--sequential`` and profiles)."""
    try:
        p = subprocess.run(_child_cmd(cfg), capture_output=True, text=True, env=_child_env(threads, extra_env),
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(ok=False, error='timed out after %d s' % timeout)
    return _parse_result(p.stdout, p.stderr, p.returncode)


class _ServedChild(object):
    """A configuration's process that times one repeat per request, so that the parent can interleave them."""

    def __init__(self, cfg, env, timeout):
        import tempfile
        self.timeout = timeout
        self.err = tempfile.TemporaryFile(mode='w+')
        self.proc = subprocess.Popen(_child_cmd(dict(cfg, serve=True)), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=env)
        self.buf, self.lines, self.result = b'', [], None
        self._expect('READY')

    def _readline(self):
        import select
        deadline = time.time() + self.timeout
        while b'\n' not in self.buf:
            left = deadline - time.time()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise RuntimeError('no answer within %d s' % self.timeout)
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        line = line.decode('utf-8', 'replace')
        self.lines.append(line)
        return line

    def _expect(self, word):
        """Read up to a line starting with ``word``; a RESULT line (the child's end) is kept in ``self.result``."""
        if self.result is not None:
            return None
        try:
            while True:
                line = self._readline()
                if line.startswith('RESULT '):   # the child's last line: its result, or its error
                    self.result = json.loads(line[7:])
                    return None
                if line.startswith(word):
                    return line
        except (EOFError, RuntimeError) as e:
            self.proc.kill()
            self.proc.wait()
            self.err.seek(0)
            self.result = _parse_result('\n'.join(self.lines), self.err.read(), self.proc.returncode)
            if isinstance(e, RuntimeError):
                self.result['error'] = 'timed out: %s' % e
            return None

    def _send(self, text):
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            self._expect('RESULT')
            return False

    def run(self):
        """One timed repeat: img/s, or None when the child has ended."""
        if self.result is None and self._send('RUN\n'):
            line = self._expect('RATE ')
            return float(line.split()[1]) if line else None
        return None

    def finish(self):
        if self.result is None and self._send('END\n'):
            self._expect('RESULT ')
            if self.result is None:   # an EOF or time-out sets it; anything else is a protocol error
                self.result = dict(ok=False, error='child ended without a result')
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()
        self.err.close()
        return self.result


def _run_interleaved(jobs, threads, envs, repeats, timeout):
    """The jobs of one (width, batch): every configuration's process is built and warmed up, then round r times one
    repeat of each, in an order rotated by r, so slow drifts of a shared machine hit every configuration alike."""
    children = [_ServedChild(job, _child_env(threads, env), timeout) for job, env in zip(jobs, envs)]
    for r in range(repeats):
        k = r % len(children)
        for child in children[k:] + children[:k]:
            child.run()
    return [c.finish() for c in children]


def _fmt(v, nd=1):
    return '-' if v is None else ('%.*f' % (nd, v))


def speed_ratio(r, t):
    """r's speed over t's: the median of the per-round ratios when both were timed in the same interleaved rounds
    (each round's pair saw the same machine state), else the ratio of the medians."""
    ra, rt = r.get('rates') or [], t.get('rates') or []
    if r.get('interleaved') and t.get('interleaved') and ra and len(ra) == len(rt):
        q = sorted(a / b for a, b in zip(ra, rt))
        return q[len(q) // 2]
    return r['median'] / t['median']


def make_table(results, batches):
    """Markdown: one row per (width, config), img/s per batch with ratios to timm eager / channels_last."""
    by = {(r['width'], r['config'], r['batch']): r for r in results}
    widths = sorted({r['width'] for r in results}, key=lambda w: (str(w).startswith('lite'), str(w)))
    lines = ['| width | configuration | ' + ' | '.join(
        'bs%d img/s median [min-max] | bs%d x timm eager / x timm CL | bs%d RSS MiB' % (b, b, b) for b in batches) +
        ' | max abs diff / top-1 agree | foreign CPU max |',
        '|---|---|' + '---|---|---|' * len(batches) + '---|---|']
    for w in widths:
        for c in ALL_CONFIGS:
            if c in TRAIN_CONFIGS:
                continue
            rows = [by.get((w, c, b)) for b in batches]
            if not any(rows):
                continue
            cells, notes, foreign = [], '', []
            for b, r in zip(batches, rows):
                if r is None:
                    cells += ['', '', '']
                    continue
                if not r.get('ok'):
                    cells += ['error: %s' % r.get('error', '?')[:120].replace('|', '/'), '', _fmt(r.get('rss_mib'), 0)]
                    continue
                te, tc = by.get((w, 'timm_eager', b)), by.get((w, 'timm_cl', b))
                ratio = ' / '.join(_fmt(speed_ratio(r, t), 2) if t and t.get('ok') else '-' for t in (te, tc))
                cells += ['**%s** [%s-%s]' % (_fmt(r['median']), _fmt(r['min']), _fmt(r['max'])), ratio,
                          _fmt(r['rss_mib'], 0)]
                foreign.append(r.get('foreign_max', 0))
                if 'max_abs_diff' in r and not notes:
                    notes = '%.1e / %.0f %%' % (r['max_abs_diff'], 100 * r['top1_agreement'])
            lines.append('| %s | %s | %s | %s | %s |' % (w, LABELS.get(c, c), ' | '.join(cells), notes or '-',
                                                         ('%.0f %%' % (100 * max(foreign))) if foreign else '-'))
    train = [r for r in results if r['config'] in TRAIN_CONFIGS]
    if train:
        lines += ['', '| width | training step (fwd + bwd + SGD, BN train mode) | batch | img/s median [min-max] | '
                  'x timm train | RSS MiB |', '|---|---|---|---|---|---|']
        for r in sorted(train, key=lambda r: (str(r['width']), r['config'])):
            t = by.get((r['width'], 'timm_train', r['batch']))
            if r.get('ok'):
                ratio = _fmt(speed_ratio(r, t), 2) if t and t.get('ok') else '-'
                lines.append('| %s | %s | %d | **%s** [%s-%s] | %s | %s |' % (
                    r['width'], LABELS[r['config']], r['batch'], _fmt(r['median']), _fmt(r['min']), _fmt(r['max']),
                    ratio, _fmt(r['rss_mib'], 0)))
            else:
                lines.append('| %s | %s | %d | error: %s | - | %s |' % (r['width'], LABELS[r['config']], r['batch'],
                                                                     r.get('error', '?')[:150].replace('|', '/'),
                                                                     _fmt(r.get('rss_mib'), 0)))
    return '\n'.join(lines)


def make_profile_table(profiles, top=14):
    out = []
    for r in profiles:
        if not r.get('ok'):
            out.append('### %s, width %s, batch %d: error %s\n' % (LABELS.get(r['config']), r['width'], r['batch'],
                                                                  r.get('error')))
            continue
        pr = r['profile']
        total = sum(o['ms'] for o in pr['ops']) or 1.0
        out.append('### %s, width %s, batch %d: %.2f ms per forward (%.1f img/s while profiled)\n'
                   % (LABELS.get(r['config'], r['config']), r['width'], r['batch'], pr['wall_ms'],
                      1e3 * r['batch'] / pr['wall_ms']))
        out.append('| operator | calls / forward | ms / forward | share |\n|---|---|---|---|')
        for o in pr['ops'][:top]:
            out.append('| %s | %.1f | %.2f | %.1f %% |' % (o['op'][:60], o['calls'], o['ms'], 100 * o['ms'] / total))
        out.append('')
    return '\n'.join(out)


def make_chart(results, batches, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    widths = sorted({r['width'] for r in results}, key=str)
    configs = [c for c in ALL_CONFIGS if c not in TRAIN_CONFIGS and any(r['config'] == c for r in results)]
    # one row per width, one column per batch size
    fig, axes = plt.subplots(len(widths), len(batches), figsize=(5.5 * len(batches),
                                                                 (0.45 * len(configs) + 1.8) * len(widths)),
                             squeeze=False)
    for ax, (w, b) in zip(axes.ravel(), [(w, b) for w in widths for b in batches]):
        vals, errs, labels, colors = [], [], [], []
        for c in configs:
            r = next((r for r in results if r['config'] == c and r['width'] == w and r['batch'] == b), None)
            ok = bool(r and r.get('ok'))
            vals.append(r['median'] if ok else 0)
            errs.append([r['median'] - r['min'], r['max'] - r['median']] if ok else [0, 0])
            labels.append(LABELS.get(c, c) + ('' if ok else ' (n/a)'))
            colors.append('tab:orange' if c.startswith('timm') else ('tab:green' if 'fast' in c else 'tab:blue'))
        y = range(len(configs))
        ax.barh(y, vals, xerr=list(zip(*errs)), color=colors, capsize=2)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel('img/s (median, min-max)')
        ax.set_title('width %s, batch %d' % (w, b), fontsize=10)
        for yi, v, e in zip(y, vals, errs):
            if v:   # the median, written past the max whisker
                ax.text(v + e[1], yi, '  %.1f' % v, va='center', fontsize=7)
        ax.set_xlim(0, max(v + e[1] for v, e in zip(vals, errs)) * 1.15 or 1)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--widths', default='1.0', help="comma list: 1.0,1.5,lite1.0 (lite: MXNet rows only)")
    p.add_argument('--batches', default='1,32', help='comma list of inference batch sizes')
    p.add_argument('--threads', type=int, default=2, help='OMP / torch threads (default 2)')
    p.add_argument('--repeats', type=int, default=7, help='timed repeats per configuration')
    p.add_argument('--iters', type=int, default=0, help='iterations per repeat (default: 20 at bs1, 64/bs above)')
    p.add_argument('--warmup', type=int, default=None, help='warm-up iterations (default 10 at bs1, 3 above)')
    p.add_argument('--configs', default='', help='comma list (default: all but timm_compile); see the module doc')
    p.add_argument('--torch-compile', action='store_true', help='add timm_compile (first call compiles: minutes)')
    p.add_argument('--no-train', action='store_true', help='skip the training-step rows')
    p.add_argument('--train-batch', type=int, default=32)
    p.add_argument('--size', type=int, default=224, help='input resolution')
    p.add_argument('--calib', type=int, default=32, help='generated calibration images for INT8')
    p.add_argument('--max-foreign', type=float, default=0.10,
                   help='wait for / re-run repeats when other processes use more than this share of the CPUs')
    p.add_argument('--no-wait', action='store_true', help='do not wait for a quiet machine')
    p.add_argument('--timeout', type=int, default=1800, help='seconds per configuration (build, or one repeat)')
    p.add_argument('--sequential', action='store_true',
                   help='time one configuration after the other (one process alive at a time: less memory) instead '
                        'of interleaving the repeats of all configurations of a width and batch')
    p.add_argument('--profile', default='', metavar='CONFIGS',
                   help='also write a per-operator profile (mx.profiler, bulk execution off) of these MXNet '
                        'configurations, e.g. mx_fused,mx_fast, to benchmark_profile.md / .json')
    p.add_argument('--output-dir', default=os.path.join(REPO, 'results', 'benchmark'))
    p.add_argument('--child', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args.child)

    from tqdm import tqdm
    widths = [w.strip() for w in args.widths.split(',') if w.strip()]
    for w in widths:
        try:
            if _parse_width(w)[1] <= 0:
                raise ValueError
        except ValueError:
            p.error('--widths: %r is not a width; give numbers such as 1.0 or 1.5, or lite1.0 for ReXNet-lite' % w)
    batches = [int(b) for b in args.batches.split(',') if b.strip()]
    configs = [c.strip() for c in args.configs.split(',') if c.strip()] or \
        [c for c in ALL_CONFIGS if c != 'timm_compile']
    if args.torch_compile and 'timm_compile' not in configs:
        configs.append('timm_compile')
    if args.no_train:
        configs = [c for c in configs if c not in TRAIN_CONFIGS]
    unknown = [c for c in configs if c not in ALL_CONFIGS]
    if unknown:
        p.error('unknown configurations %s; known: %s' % (unknown, ', '.join(ALL_CONFIGS)))
    have_torch = _torch_available()
    skipped = []
    if not have_torch:
        skipped = [c for c in configs if c.startswith('timm')]
        configs = [c for c in configs if not c.startswith('timm')]
    child_args = dict(repeats=args.repeats, iters=args.iters, warmup=args.warmup, size=args.size, calib=args.calib,
                      threads=args.threads, max_foreign=args.max_foreign, wait_quiet=not args.no_wait)
    jobs = []
    for w in widths:
        for c in configs:
            if c.startswith('timm') and _parse_width(w)[0]:
                continue
            for b in ([args.train_batch] if c in TRAIN_CONFIGS else batches):
                jobs.append(dict(config=c, width=w, batch=b, args=child_args))
    profile_configs = [c.strip() for c in args.profile.split(',') if c.strip()]
    bad = [c for c in profile_configs if not c.startswith('mx_') or c in TRAIN_CONFIGS]
    if bad:
        p.error('--profile takes MXNet inference configurations, not %s' % bad)
    for w in widths:
        for c in profile_configs:
            for b in batches:
                jobs.append(dict(config=c, width=w, batch=b, args=child_args, profile=True))
    command = ' '.join(['python', os.path.relpath(os.path.abspath(__file__), os.getcwd())] +
                       list(sys.argv[1:] if argv is None else argv))
    machine = _machine(args.threads)
    print('machine: %s' % json.dumps(machine))
    print('command: %s' % command)
    if skipped:
        print('torch/timm not importable: skipping %s' % ', '.join(skipped))
    results, profiles = [], []
    runs = [[j] for j in jobs if j.get('profile')]
    timed = [j for j in jobs if not j.get('profile')]
    if args.sequential:
        runs = [[j] for j in timed] + runs
    else:   # one interleaved group per (width, batch); training steps apart from inference
        groups = {}
        for j in timed:
            groups.setdefault((j['width'], j['batch'], j['config'] in TRAIN_CONFIGS), []).append(j)
        runs = list(groups.values()) + runs
    bar = tqdm(total=len(jobs), desc='benchmark', unit='config')
    for run in runs:
        bar.set_postfix_str(', '.join(sorted({j['config'] for j in run}))[:60] + ' w%s bs%d' % (
            run[0]['width'], run[0]['batch']))
        envs = []
        for job in run:
            env = dict(FAST_ENV) if job['config'] in ('mx_fast', 'mx_fast_int8') else {}
            if job.get('profile'):
                env['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'   # per-operator records instead of bulked segments
            envs.append(env)
        if len(run) == 1:
            out = [_run_child(run[0], args.threads, envs[0], args.timeout)]
        else:
            out = _run_interleaved(run, args.threads, envs, args.repeats, args.timeout)
        for job, env, r in zip(run, envs, out):
            r.update(config=job['config'], width=job['width'], batch=job['batch'], env=env,
                     interleaved=len(run) > 1)
            r.pop('traceback', None) if r.get('ok') else None
            (profiles if job.get('profile') else results).append(r)
        bar.update(len(run))
    bar.close()
    table = make_table(results, batches)
    os.makedirs(args.output_dir, exist_ok=True)
    stamp = time.strftime('%Y-%m-%d %H:%M')
    head = ['# rexnet_gluon CPU benchmark (%s)' % stamp, '',
            'Machine: %s; %s logical CPUs; ISA %s; MXNet %s (oneDNN %s, MKLDNN=%s); torch %s, timm %s; '
            '%d threads (OMP_NUM_THREADS / torch.set_num_threads).' % (
                machine.get('cpu', '?'), machine.get('logical_cpus'), machine.get('isa', '?'),
                machine.get('mxnet', '?'), machine.get('onednn', '?'), machine.get('mkldnn', '?'),
                machine.get('torch', '-'), machine.get('timm', '-'), args.threads), '',
            'Command: `%s`' % command, '',
            'img/s: median [min-max] over %d repeats after warm-up; every configuration in a process of its own '
            '(RSS = its ru_maxrss). %s x timm = %s to timm eager NCHW / channels_last at the same width and batch. '
            'Random weights and BN statistics; mx_fast and mx_fast_int8 run with %s. "foreign CPU": the most any '
            'kept repeat saw other processes use.' % (
                args.repeats,
                'Configurations run one after the other.' if args.sequential else
                'The processes of one width and batch are all built and warmed up first, then timed in interleaved '
                'rounds (one repeat of each per round, order rotated), so that drifts of the machine hit all alike.',
                'ratio of medians' if args.sequential else 'median over the rounds of the per-round speed ratio',
                ' '.join('%s=%s' % kv for kv in FAST_ENV.items())),
            '']
    md = '\n'.join(head) + table + '\n'
    with open(os.path.join(args.output_dir, 'benchmark.md'), 'w') as f:
        f.write(md)
    with open(os.path.join(args.output_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(machine=machine, command=command, date=stamp, args=vars(args), results=results), f, indent=1)
    if profiles:
        text = make_profile_table(profiles)
        with open(os.path.join(args.output_dir, 'benchmark_profile.md'), 'w') as f:
            f.write('# Per-operator profile (mx.profiler, MXNET_EXEC_BULK_EXEC_INFERENCE=0)\n\n' + text + '\n')
        with open(os.path.join(args.output_dir, 'benchmark_profile.json'), 'w') as f:
            json.dump(profiles, f, indent=1)
        print(text)
    try:
        make_chart(results, batches, os.path.join(args.output_dir, 'benchmark.png'))
    except Exception as e:   # the numbers matter more than the picture
        print('chart failed: %s' % e)
    print()
    print(table)
    print()
    print('machine: %s' % json.dumps(machine))
    print('command: %s' % command)
    print('written: %s/benchmark.{md,json,png}' % args.output_dir)
    return 0 if all(r.get('ok') for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
