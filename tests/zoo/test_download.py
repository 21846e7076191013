"""Tests for rexnet_gluon.zoo.download against a local HTTP server (127.0.0.1 only, no internet)."""
import collections
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from rexnet_gluon.zoo import download as dl
from rexnet_gluon.zoo.download import DownloadError, download, drive_url, fetch_first, file_lock

MODULE_FILE = dl.__file__
FILES = {
    'a.bin': os.urandom(300 * 1024),
    'b.bin': os.urandom(200 * 1024),
}
SHA = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
FAST = dict(backoff=0, progress=False)        # no sleeping between retries, no progress bar


class Handler(http.server.BaseHTTPRequestHandler):
    """Behaviour chosen by path; `counts` records how many requests each path (no query) saw."""
    counts = collections.Counter()
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def _send_file(self, data, length=True, ctype='application/octet-stream'):
        self.send_response(200)
        self.send_header('Content-Type', ctype)
        if length:
            self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_html(self, page, status=200, headers=()):
        body = page.encode()
        self.send_response(status)
        self.send_header('Content-Type', 'text/html; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        parts = url.path.strip('/').split('/')
        with self.lock:
            self.counts[url.path] += 1
            n = self.counts[url.path]          # 1 for the first request to this path
        kind, name = parts[0], parts[-1]
        data = FILES.get(name, b'')
        if kind == 'file':
            self._send_file(data)
        elif kind == 'nolength':               # HTTP/1.0 body delimited by closing the connection
            self._send_file(data, length=False)
        elif kind == 'slow':                   # lets a second process arrive while the first downloads
            time.sleep(1.0)
            self._send_file(data)
        elif kind in ('drop', 'stall'):        # /drop/N/name: the first N requests break mid-body
            if n > int(parts[1]):
                return self._send_file(data)
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            if kind == 'stall':                # stop sending: the client's read timeout fires
                time.sleep(1.0)
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        elif kind == 'status':                 # /status/CODE/N/name: CODE for the first N requests
            if n > int(parts[2]):
                return self._send_file(data)
            self.send_error(int(parts[1]))
        elif kind == 'html':
            self._send_html('<html><body>Please log in</body></html>')
        elif kind == 'sniff':                  # an HTML page mislabelled as binary
            self._send_file(b'\n<!DOCTYPE html><html><body>Error</body></html>')
        elif kind == 'drive':
            self._drive(parts[1], name, query)
        else:
            self.send_error(404)

    def _drive(self, flavour, name, query):
        """Google-Drive-like: an HTML virus-scan warning until the download is confirmed."""
        host = 'http://' + self.headers['Host']
        if flavour == 'form':                  # current Drive: a GET form with hidden inputs
            self._send_html(
                '<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
                '<p>Google Drive can\'t scan this file for viruses.</p>'
                '<form id="download-form" action="%s/drive/confirmed/x" method="get">'
                '<input type="submit" id="uc-download-link" value="Download anyway"/>'
                '<input type="hidden" name="id" value="%s"><input type="hidden" name="export" value="download">'
                '<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="u-123">'
                '</form></body></html>' % (host, name))
        elif flavour == 'confirmed':
            ok = query.get('confirm') == 't' and query.get('uuid') == 'u-123' and query.get('export') == 'download'
            if ok and query.get('id') in FILES:
                self._send_file(FILES[query['id']])
            else:
                self.send_error(400)
        elif flavour == 'link':                # older Drive: confirm token inside a link
            if query.get('confirm') == 'Tok1':
                return self._send_file(FILES[name])
            self._send_html('<html><body><a id="uc-download-link" href="/drive/link/%s?export=download'
                            '&amp;confirm=Tok1&amp;id=%s">Download anyway</a></body></html>' % (name, name))
        elif flavour == 'cookie':              # older Drive: confirm token in a download_warning cookie
            if query.get('confirm') == 'Tok2' and 'download_warning_77=Tok2' in self.headers.get('Cookie', ''):
                return self._send_file(FILES[name])
            self._send_html('<html><body>Virus scan warning</body></html>',
                            headers=[('Set-Cookie', 'download_warning_77=Tok2; Path=/')])
        elif flavour == 'loop':                # every "confirmation" leads to another warning page
            self._send_html('<a href="/drive/loop/%s?confirm=T%d">again</a>' % (name, time.monotonic_ns()))
        else:                                  # refused: quota exceeded / not shared, no token anywhere
            self._send_html('<html><body>Sorry, you can\'t view or download this file at this time. '
                            'Too many users have viewed or downloaded this file recently.</body></html>')


@pytest.fixture(scope='module')
def _server():
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(_server):
    Handler.counts.clear()
    return _server


def hits(path):
    return Handler.counts[path]


def listing(folder):
    return sorted(os.listdir(folder))


def read(path):
    with open(path, 'rb') as f:
        return f.read()


# ---------------------------------------------------------------- plain downloads and hashes

@pytest.mark.parametrize('kind', ['file', 'nolength'])
def test_download_ok_with_prefix(server, tmp_path, kind):
    out = download(server + '/%s/a.bin' % kind, str(tmp_path / 'a.bin'), sha256=SHA['a.bin'][:8], **FAST)
    assert out == str(tmp_path / 'a.bin')
    assert read(out) == FILES['a.bin']
    assert listing(tmp_path) == ['a.bin']
    from rexnet_gluon.utils.fileio import _umask
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~_umask()   # not mkstemp's 0600


def test_full_digest_uppercase_and_nested_folder(server, tmp_path):
    out = download(server + '/file/b.bin', str(tmp_path / 'new' / 'dir' / 'b.bin'), sha256=SHA['b.bin'].upper(), **FAST)
    assert read(out) == FILES['b.bin']


def _near_miss(digest):
    """A full digest equal to ``digest`` in its first 8 hex digits and different after them."""
    return digest[:8] + ('1' if digest[8] == '0' else '0') + digest[9:]


def test_full_digest_is_compared_in_full(server, tmp_path):
    """An 8-digit prefix is all timm's file names carry (so prefixes are accepted), but a full digest given is
    checked to its last digit: one equal in its first 8 digits only is a mismatch."""
    wrong = _near_miss(SHA['a.bin'])
    with pytest.raises(DownloadError, match='SHA-256'):
        download(server + '/file/a.bin', str(tmp_path / 'a.bin'), sha256=wrong, **FAST)
    assert listing(tmp_path) == []
    (tmp_path / 'a.bin').write_bytes(FILES['a.bin'])      # a file already there is not reused on a near miss
    with pytest.raises(DownloadError, match='SHA-256'):
        fetch_first([{'url': server + '/file/a.bin', 'filename': 'a.bin', 'sha256': wrong}], str(tmp_path), **FAST)
    assert hits('/file/a.bin') == 2                        # fetched again, and that copy refused too


def test_bad_sha_argument(tmp_path):
    with pytest.raises(ValueError, match='hex'):
        download('http://127.0.0.1:9/x', str(tmp_path / 'x'), sha256='not-hex')
    assert listing(tmp_path) == []


def test_progress_bar_goes_to_stderr(server, tmp_path, capfd):
    download(server + '/file/a.bin', str(tmp_path / 'a.bin'), backoff=0, progress=True)
    out, err = capfd.readouterr()
    assert out == '' and 'a.bin' in err


def test_hash_mismatch_saves_nothing_and_keeps_old_file(server, tmp_path):
    with pytest.raises(DownloadError) as e:
        download(server + '/file/a.bin', str(tmp_path / 'a.bin'), sha256='deadbeef', **FAST)
    msg = str(e.value)
    assert 'deadbeef' in msg and SHA['a.bin'] in msg and '/file/a.bin' in msg
    assert listing(tmp_path) == []
    assert hits('/file/a.bin') == 1                  # a wrong file is not retried
    # An existing file at the destination survives a failed download untouched.
    (tmp_path / 'a.bin').write_bytes(b'old')
    with pytest.raises(DownloadError):
        download(server + '/file/a.bin', str(tmp_path / 'a.bin'), sha256='deadbeef', **FAST)
    assert listing(tmp_path) == ['a.bin'] and read(tmp_path / 'a.bin') == b'old'


# ---------------------------------------------------------------- retries

def test_unresolvable_host_is_not_retried(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(dl.time, 'sleep', lambda s: calls.append(s))   # a retry would sleep first
    with pytest.raises(DownloadError, match='cannot resolve'):
        download('http://no-such-host.invalid/a.bin', str(tmp_path / 'a.bin'), retries=5, backoff=1.0, progress=False)
    assert calls == [] and listing(tmp_path) == []


def test_dropped_connection_then_success(server, tmp_path):
    out = download(server + '/drop/2/a.bin', str(tmp_path / 'a.bin'), sha256=SHA['a.bin'][:8], retries=5, **FAST)
    assert read(out) == FILES['a.bin']
    assert hits('/drop/2/a.bin') == 3
    assert listing(tmp_path) == ['a.bin']


def test_always_dropping_gives_up_after_retries(server, tmp_path):
    with pytest.raises(DownloadError, match='after 4 attempts') as e:
        download(server + '/drop/99/a.bin', str(tmp_path / 'a.bin'), retries=4, **FAST)
    assert 'connection broken mid-body' in str(e.value) or 'body ended' in str(e.value)
    assert str(e.value).count('mid-body') <= 1        # identical reasons are collapsed, not repeated 4 times
    assert hits('/drop/99/a.bin') == 4
    assert listing(tmp_path) == []


def test_read_timeout_mid_body_is_retried(server, tmp_path):
    out = download(server + '/stall/1/b.bin', str(tmp_path / 'b.bin'), timeout=0.3, **FAST)
    assert read(out) == FILES['b.bin'] and hits('/stall/1/b.bin') == 2


def test_short_body_without_urllib3_check_is_retried(server, tmp_path, monkeypatch):
    """Our own Content-Length check (for urllib3 < 2, which returns a short body silently)."""
    import requests
    real = requests.models.Response.iter_content
    calls = []

    def truncated(self, chunk_size=1, decode_unicode=False):
        calls.append(1)
        for chunk in real(self, chunk_size, decode_unicode):
            yield chunk[:1000] if len(calls) == 1 else chunk    # first attempt: a short body, no error

    monkeypatch.setattr(requests.models.Response, 'iter_content', truncated)
    out = download(server + '/file/a.bin', str(tmp_path / 'a.bin'), sha256=SHA['a.bin'][:8], **FAST)
    assert read(out) == FILES['a.bin'] and hits('/file/a.bin') == 2


def test_connection_refused_is_retried_then_fails(tmp_path):
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()                                        # nothing listens on this port now
    with pytest.raises(DownloadError, match='after 3 attempts'):
        download('http://127.0.0.1:%d/x.bin' % port, str(tmp_path / 'x.bin'), retries=3, **FAST)
    assert listing(tmp_path) == []


@pytest.mark.parametrize('code', [500, 503, 429])
def test_server_errors_are_retried(server, tmp_path, code):
    out = download(server + '/status/%d/2/b.bin' % code, str(tmp_path / 'b.bin'), **FAST)
    assert read(out) == FILES['b.bin'] and hits('/status/%d/2/b.bin' % code) == 3


@pytest.mark.parametrize('code', [404, 403, 401])
def test_client_errors_fail_at_once(server, tmp_path, code):
    with pytest.raises(DownloadError, match='HTTP %d' % code):
        download(server + '/status/%d/99/b.bin' % code, str(tmp_path / 'b.bin'), retries=5, **FAST)
    assert hits('/status/%d/99/b.bin' % code) == 1
    assert listing(tmp_path) == []


def test_backoff_is_exponential(server, tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(dl.time, 'sleep', sleeps.append)
    download(server + '/status/500/3/b.bin', str(tmp_path / 'b.bin'), backoff=0.5, progress=False)
    assert sleeps == [0.5, 1.0, 2.0]


# ---------------------------------------------------------------- HTML instead of a file; Google Drive

@pytest.mark.parametrize('flavour', ['form', 'link', 'cookie'])
def test_drive_confirmation_is_followed(server, tmp_path, flavour):
    out = download(server + '/drive/%s/a.bin' % flavour, str(tmp_path / 'a.bin'), sha256=SHA['a.bin'][:8],
                   drive=True, **FAST)
    assert read(out) == FILES['a.bin']
    assert listing(tmp_path) == ['a.bin']


@pytest.mark.parametrize('flavour', ['refused', 'loop'])
def test_drive_refusal_saves_nothing(server, tmp_path, flavour):
    with pytest.raises(DownloadError, match='Google Drive refused') as e:
        download(server + '/drive/%s/a.bin' % flavour, str(tmp_path / 'a.bin'), drive=True, **FAST)
    assert 'by hand' in str(e.value)
    assert listing(tmp_path) == []
    assert hits('/drive/%s/a.bin' % flavour) <= 3    # not retried, at most two confirmations followed


@pytest.mark.parametrize('path', ['/html/a.bin', '/sniff/a.bin', '/drive/form/a.bin'])
def test_html_never_saved_without_drive(server, tmp_path, path):
    """Off Drive (drive=False, or auto on a non-Drive host) any HTML answer is an error."""
    with pytest.raises(DownloadError, match='HTML page'):
        download(server + path, str(tmp_path / 'a.bin'), **FAST)
    assert listing(tmp_path) == []
    assert hits(path) == 1


def test_sniffed_html_is_followed_on_drive(server, tmp_path):
    with pytest.raises(DownloadError, match='Google Drive refused'):
        download(server + '/sniff/a.bin', str(tmp_path / 'a.bin'), drive=True, **FAST)
    assert listing(tmp_path) == []


def test_drive_urls():
    assert drive_url('1AbC-x_9') == 'https://drive.google.com/uc?export=download&id=1AbC-x_9'
    assert dl._is_drive(drive_url('x'))
    assert dl._is_drive('https://drive.usercontent.google.com/download?id=x&export=download')
    assert not dl._is_drive('https://github.com/x/y/releases/download/v1/m.pth')
    assert not dl._is_drive('https://evil.example/drive.google.com/uc?id=x')
    assert dl._drive_browser_url(drive_url('ID9')) == 'https://drive.google.com/file/d/ID9/view'


# ---------------------------------------------------------------- fetch_first

def test_fetch_first_falls_back(server, tmp_path):
    cands = [{'url': server + '/status/404/99/a.bin', 'filename': 'a.bin', 'sha256': SHA['a.bin'][:8]},
             {'url': server + '/file/b.bin', 'filename': 'b.bin', 'sha256': SHA['b.bin'][:8]}]
    path, cand = fetch_first(cands, str(tmp_path), **FAST)
    assert cand is cands[1] and path == str(tmp_path / 'b.bin') and read(path) == FILES['b.bin']
    assert not (tmp_path / 'a.bin').exists()


def test_fetch_first_lists_every_failure(server, tmp_path):
    urls = [server + '/status/404/99/a.bin', server + '/file/a.bin', server + '/drop/99/b.bin']
    cands = [{'url': urls[0], 'filename': 'a.bin', 'sha256': None},
             {'url': urls[1], 'filename': 'a.bin', 'sha256': '00000000'},
             {'url': urls[2], 'filename': 'b.bin'}]
    with pytest.raises(DownloadError) as e:
        fetch_first(cands, str(tmp_path), retries=2, **FAST)
    lines = str(e.value).splitlines()
    assert len(lines) == 4                           # a header, then one line per URL
    for url, line, why in zip(urls, lines[1:], ['HTTP 404', 'SHA-256 mismatch', 'after 2 attempts']):
        assert line.startswith(url + ' -> ') and why in line
    assert [f for f in listing(tmp_path) if not f.endswith('.lock')] == []


def test_fetch_first_reuses_existing_file(server, tmp_path):
    (tmp_path / 'a.bin').write_bytes(FILES['a.bin'])
    (tmp_path / 'c.bin').write_bytes(b'anything')
    cand = {'url': server + '/file/a.bin', 'filename': 'a.bin', 'sha256': SHA['a.bin'][:8].upper()}
    assert fetch_first([cand], str(tmp_path), **FAST) == (str(tmp_path / 'a.bin'), cand)
    cand = {'url': server + '/file/b.bin', 'filename': 'c.bin', 'sha256': None}
    assert fetch_first([cand], str(tmp_path), **FAST)[0] == str(tmp_path / 'c.bin')
    assert hits('/file/a.bin') == 0 and hits('/file/b.bin') == 0
    assert read(tmp_path / 'c.bin') == b'anything'


def test_fetch_first_replaces_corrupt_file(server, tmp_path):
    (tmp_path / 'a.bin').write_bytes(b'truncated junk')
    cand = {'url': server + '/file/a.bin', 'filename': 'a.bin', 'sha256': SHA['a.bin'][:8]}
    path, _ = fetch_first([cand], str(tmp_path), **FAST)
    assert read(path) == FILES['a.bin'] and hits('/file/a.bin') == 1


# ---------------------------------------------------------------- file_lock across processes

# Loads download.py without the package __init__ (which imports mxnet), waits for "go"
# on stdin so both workers race, then fetches; finally reports whether mxnet/torch got imported.
WORKER = r'''
import os, sys, types
# the package without its __init__ (which imports mxnet): download.py and what it imports, nothing else
pkg = types.ModuleType('rexnet_gluon'); pkg.__path__ = [os.path.dirname(sys.argv[1])]; sys.modules['rexnet_gluon'] = pkg
import rexnet_gluon.zoo.download as dl
mode, url, path, sha = sys.argv[2:6]
print('ready', flush=True)
sys.stdin.readline()
if mode == 'fetch_first':
    dl.fetch_first([{'url': url, 'filename': os.path.basename(path), 'sha256': sha}],
                   os.path.dirname(path), progress=False, backoff=0)
elif mode == 'manual':
    with dl.file_lock(path):
        if not os.path.exists(path):
            dl.download(url, path, sha256=sha, progress=False, backoff=0)
else:  # 'nolock': the race the lock prevents (control experiment)
    if not os.path.exists(path):
        dl.download(url, path, sha256=sha, progress=False, backoff=0)
print('heavy imports:', sorted(m for m in ('mxnet', 'torch') if m in sys.modules), flush=True)
'''


def race(server, tmp_path, mode):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    target = str(tmp_path / 'models' / 'a.bin')
    args = [sys.executable, str(script), MODULE_FILE, mode, server + '/slow/a.bin', target, SHA['a.bin'][:8]]
    procs = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == 'ready', p.stderr.read()
    for p in procs:                                  # release both at (nearly) the same moment
        p.stdin.write('go\n')
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert 'heavy imports: []' in out
    assert read(target) == FILES['a.bin']
    assert [f for f in listing(tmp_path / 'models') if not f.endswith('.lock')] == ['a.bin']
    return hits('/slow/a.bin')


@pytest.mark.parametrize('mode', ['fetch_first', 'manual'])
def test_lock_makes_two_processes_download_once(server, tmp_path, mode):
    assert race(server, tmp_path, mode) == 1


def test_race_without_lock_downloads_twice(server, tmp_path):
    """Control: proves the race above is real, so the single download is the lock's doing."""
    assert race(server, tmp_path, 'nolock') == 2


def test_lock_timeout_names_lock_file(tmp_path, monkeypatch):
    target = str(tmp_path / 'a.bin')
    with file_lock(target) as held:
        assert held == target + '.lock'
        t0 = time.monotonic()
        with pytest.raises(DownloadError) as e:
            with file_lock(target, timeout=0.3):
                pass
        assert 0.25 < time.monotonic() - t0 < 5
        assert str(e.value).count(target + '.lock') >= 1 and 'GLUON_MODEL_LOCK_TIMEOUT' in str(e.value)
        monkeypatch.setenv('GLUON_MODEL_LOCK_TIMEOUT', '0.1')
        with pytest.raises(DownloadError, match='0.1s'):
            with file_lock(target):
                pass
    with file_lock(target, timeout=0):               # free again once released
        pass


# ---------------------------------------------------------------- interrupts

class InterruptingBar:
    """Stands in for tqdm: Ctrl-C arrives while the first chunk is being recorded."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        raise KeyboardInterrupt


@pytest.mark.parametrize('existing', [None, b'previous version'])
def test_keyboard_interrupt_leaves_nothing(server, tmp_path, monkeypatch, existing):
    if existing is not None:
        (tmp_path / 'a.bin').write_bytes(existing)
    monkeypatch.setattr(dl, 'tqdm', InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        download(server + '/file/a.bin', str(tmp_path / 'a.bin'), **FAST)
    assert hits('/file/a.bin') == 1                  # an interrupt is not a retryable error
    if existing is None:
        assert listing(tmp_path) == []
    else:
        assert listing(tmp_path) == ['a.bin'] and read(tmp_path / 'a.bin') == existing
