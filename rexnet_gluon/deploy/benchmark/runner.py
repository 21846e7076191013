"""The parent side of the benchmark: the machine description, one child process per configuration (run to the
end, or served one repeat per request), the interleaved rounds, and the schedule of all jobs."""
import json
import os
import platform
import subprocess
import sys
import time

from .child import CHILD_SCRIPT, FAST_ENV, TRAIN_CONFIGS

__all__ = ['machine_info', 'torch_available', 'run_child', 'run_interleaved', 'run_jobs', ]


def machine_info(threads):
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


def torch_available():
    try:
        p = subprocess.run([sys.executable, '-c', 'import torch, timm'], capture_output=True, timeout=120)
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _start_environ():
    """The environment this process was started with. Importing rexnet_gluon imports MXNet, whose cv2 amends
    ``os.environ['LD_LIBRARY_PATH']``; the children get the environment as it was given to the parent (as when
    the parent was a script that imported nothing of the package)."""
    try:
        with open('/proc/self/environ', 'rb') as f:
            pairs = [item.split(b'=', 1) for item in f.read().split(b'\0') if b'=' in item]
        return {os.fsdecode(k): os.fsdecode(v) for k, v in pairs}
    except OSError:
        return dict(os.environ)


def _child_env(threads, extra_env):
    env = _start_environ()
    for k in ('MXNET_ENGINE_TYPE', 'MXNET_USE_OPERATOR_TUNING', 'DNNL_VERBOSE', 'MKLDNN_VERBOSE'):
        env.pop(k, None)
    env.update({'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads), 'PYTHONWARNINGS': 'ignore'})
    env.update(extra_env)
    return env


def _child_cmd(cfg):
    return [sys.executable, CHILD_SCRIPT, json.dumps(cfg)]


def _parse_result(stdout, stderr, returncode):
    for line in stdout.splitlines()[::-1]:
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    tail = (stderr or stdout).strip().splitlines()[-3:]
    return dict(ok=False, error='child exited with %d: %s' % (returncode, ' | '.join(tail)[-400:]))


def run_child(cfg, threads, extra_env, timeout):
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


def run_interleaved(jobs, threads, envs, repeats, timeout):
    """The jobs of one (width, batch): every configuration's process is built and warmed up, then round r times one
    repeat of each, in an order rotated by r, so slow drifts of a shared machine hit every configuration alike."""
    children = [_ServedChild(job, _child_env(threads, env), timeout) for job, env in zip(jobs, envs)]
    for r in range(repeats):
        k = r % len(children)
        for child in children[k:] + children[:k]:
            child.run()
    return [c.finish() for c in children]


def _job_env(job):
    env = dict(FAST_ENV) if job['config'] in ('mx_fast', 'mx_fast_int8') else {}
    if job.get('profile'):
        env['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'   # per-operator records instead of bulked segments
    return env


def run_jobs(jobs, args):
    """Every job in a child of its own: interleaved per (width, batch) unless ``args.sequential``, profiles alone.
    Returns (results, profiles), each result with its job's config, width, batch and environment."""
    from tqdm import tqdm
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
        envs = [_job_env(job) for job in run]
        if len(run) == 1:
            out = [run_child(run[0], args.threads, envs[0], args.timeout)]
        else:
            out = run_interleaved(run, args.threads, envs, args.repeats, args.timeout)
        for job, env, r in zip(run, envs, out):
            r.update(config=job['config'], width=job['width'], batch=job['batch'], env=env,
                     interleaved=len(run) > 1)
            r.pop('traceback', None) if r.get('ok') else None
            (profiles if job.get('profile') else results).append(r)
        bar.update(len(run))
    bar.close()
    return results, profiles
