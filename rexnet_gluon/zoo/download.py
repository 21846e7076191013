"""Download pretrained checkpoints safely: atomic, hash-checked, retried, locked.

A checkpoint is large, fetched once and trusted afterwards, so this module makes sure nothing
but the complete, verified file ever appears at its final path:

* the body streams into a hidden temp file in the destination folder (same file system, so the
  final ``os.replace`` is atomic) and the temp file is removed whatever goes wrong;
* the size (Content-Length) and SHA-256 (full digest, or the 8-hex prefix that timm and
  torch.hub put in file names) are checked before the rename;
* transient failures (connection errors, timeouts, 5xx/429, a body cut short) are retried;
* an HTML page is never saved as a checkpoint; Google Drive's "can't scan this file for
  viruses" page is confirmed automatically;
* `file_lock` keeps two processes from downloading the same file at once.

Nothing here imports mxnet or torch.
"""
import contextlib
import hashlib
import html.parser
import os
import re
import sys
import time
import urllib.parse

import portalocker
import requests
from tqdm import tqdm

from ..utils.fileio import atomic_path, file_digest

__all__ = ['DownloadError', 'download', 'drive_url', 'file_lock', 'fetch_one', 'fetch_first', 'sha256_file']

CHUNK = 1 << 20                 # 1 MiB reads: few Python iterations for a 100 MB file
MAX_HTML = 2 << 20              # an interstitial page is small; never buffer more than this
DRIVE_HOSTS = ('drive.google.com', 'drive.usercontent.google.com', 'docs.google.com')


class DownloadError(RuntimeError):
    """A download failed for good (after retries, or for a reason retrying cannot fix)."""


class _Retry(Exception):
    """Internal: a transient failure worth another attempt."""


class _HtmlPage(Exception):
    """Internal: the server answered with an HTML page instead of the file."""

    def __init__(self, text, response):
        super().__init__('HTML page')
        self.text, self.response = text, response


def drive_url(file_id):
    """Direct-download URL of a Google Drive file (the id from .../file/d/ID/view)."""
    return 'https://drive.google.com/uc?export=download&id=' + urllib.parse.quote(file_id)


def _is_drive(url):
    return urllib.parse.urlsplit(url).hostname in DRIVE_HOSTS


def _drive_browser_url(url):
    ids = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get('id')
    return 'https://drive.google.com/file/d/%s/view' % ids[0] if ids else url


class _FormParser(html.parser.HTMLParser):
    """Collects the action and hidden inputs of <form id="download-form">."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self._inside = None, {}, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'form' and a.get('id') == 'download-form':
            self.action, self._inside = a.get('action') or '', True
        elif tag == 'input' and self._inside and a.get('name'):
            self.fields[a['name']] = a.get('value') or ''

    def handle_endtag(self, tag):
        if tag == 'form':
            self._inside = False


def _drive_confirm_url(url, page, response):
    """URL that confirms Drive's virus-scan warning, or None when the page offers no way on."""
    parser = _FormParser()
    parser.feed(page)
    if parser.action is not None:                       # current Drive: a GET form
        action = urllib.parse.urljoin(response.url, parser.action)
        sep = '&' if urllib.parse.urlsplit(action).query else '?'
        return action + sep + urllib.parse.urlencode(parser.fields)
    # Older Drive: a confirm token in a link (&amp;-escaped) or in a download_warning_* cookie.
    m = re.search(r'confirm=([0-9A-Za-z_-]+)', page.replace('&amp;', '&'))
    token = m.group(1) if m else next(
        (v for k, v in response.cookies.items() if k.startswith('download_warning')), None)
    if token is None:
        return None
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != 'confirm']
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query + [('confirm', token)])))


def _looks_like_html(chunk):
    # Checkpoint formats (zip, pickle, safetensors, MXNet .params) never start with '<'.
    head = chunk[:64].lstrip().lower()
    return head.startswith(b'<!doctype html') or head.startswith(b'<html')


def _read_page(response, first=b''):
    body = first + response.raw.read(MAX_HTML, decode_content=True)
    return body.decode(response.encoding or 'utf-8', 'replace')


_DNS_FAILURES = ('NameResolutionError', 'Name or service not known', 'Temporary failure in name resolution',
                 'nodename nor servname', 'getaddrinfo failed', 'No address associated with hostname')


def _short(error, limit=300):
    text = ' '.join(str(error).split())
    return text if len(text) <= limit else text[:limit] + '...'


def _get_once(session, url, fh, digest, timeout, progress, desc):
    """One GET of `url` into `fh`; raises _Retry, _HtmlPage or DownloadError on failure."""
    try:
        # identity: a gzip-encoded body would make Content-Length disagree with the bytes we count.
        r = session.get(url, stream=True, timeout=timeout, headers={'Accept-Encoding': 'identity'})
    except requests.exceptions.SSLError as e:           # certificates do not fix themselves
        raise DownloadError('TLS error for %s: %s' % (url, e)) from e
    except (requests.ConnectionError, requests.Timeout) as e:
        if any(t in str(e) for t in _DNS_FAILURES):   # offline: retrying only makes the user wait
            raise DownloadError('cannot resolve the host of %s (offline, or no DNS)' % url) from None
        raise _Retry('%s: %s' % (type(e).__name__, _short(e))) from e
    with r:
        if r.status_code >= 500 or r.status_code == 429:
            raise _Retry('HTTP %d %s' % (r.status_code, r.reason))
        if r.status_code >= 400:
            hint = (' Download it by hand from %s.' % _drive_browser_url(url)) if _is_drive(url) else ''
            raise DownloadError('HTTP %d %s for %s (not retried).%s' % (r.status_code, r.reason, url, hint))
        if 'text/html' in r.headers.get('Content-Type', '').lower():
            raise _HtmlPage(_read_page(r), r)
        encoded = r.headers.get('Content-Encoding', 'identity').lower() != 'identity'
        length = r.headers.get('Content-Length')
        total = int(length) if length and length.isdigit() and not encoded else None
        fh.seek(0)
        fh.truncate()
        done = 0
        with tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, desc=desc,
                  file=sys.stderr, disable=not progress, leave=False) as bar:
            try:
                for chunk in r.iter_content(CHUNK):
                    if done == 0 and _looks_like_html(chunk):
                        raise _HtmlPage(_read_page(r, chunk), r)
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                # urllib3 2 reports a connection dropped mid-body here (IncompleteRead).
                raise _Retry('connection broken mid-body (%d bytes kept so far): %s' % (done, e)) from e
        if total is not None and done != total:        # older urllib3 returns a short body silently
            raise _Retry('body ended after %d of %d bytes' % (done, total))


def download(url, path, sha256=None, retries=5, timeout=30, progress=True, backoff=1.0, drive=None):
    """Download `url` to `path` atomically and return `path`.

    sha256: full hex digest or a prefix of it (e.g. the 8 hex digits in timm file names).
    retries: total attempts for transient failures, sleeping ``backoff * 2**i`` s in between.
    drive: follow Google Drive's virus-scan confirmation page; None = decide from the host name.
    Any other HTML answer is an error: a checkpoint is never an HTML page.
    """
    if sha256 is not None and not re.fullmatch(r'[0-9a-fA-F]{1,64}', sha256):
        raise ValueError('sha256 must be hex digits (a digest or a prefix of one), got %r' % (sha256,))
    want = sha256.lower() if sha256 else None
    drive = _is_drive(url) if drive is None else drive
    path = os.path.abspath(path)
    name = os.path.basename(path)
    errors = []
    # atomic_path: a temp file beside `path`, renamed only if this block finishes (hash checked), else removed.
    with atomic_path(path, suffix='.part') as tmp, open(tmp, 'wb') as fh, requests.Session() as session:
        for attempt in range(max(1, retries)):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            digest = hashlib.sha256()
            try:
                target = url
                for _hop in range(3):               # original URL, then at most two confirmations
                    try:
                        _get_once(session, target, fh, digest, timeout, progress, name)
                        break
                    except _HtmlPage as page:
                        nxt = _drive_confirm_url(target, page.text, page.response) if drive else None
                        if nxt is None or nxt == target:
                            raise _html_error(url, drive) from None
                        target = nxt
                else:
                    raise _html_error(url, drive)
                break
            except _Retry as e:
                errors.append('attempt %d: %s' % (attempt + 1, e))
        else:
            reasons = sorted(set(e.split(': ', 1)[1] for e in errors))
            raise DownloadError('giving up on %s after %d attempts: %s'
                                % (url, len(errors), '; '.join(reasons)))
        fh.flush()
        os.fsync(fh.fileno())
        actual = digest.hexdigest()
        if want and not actual.startswith(want):
            # Not retried: the server answered fine, with a different file.
            raise DownloadError(
                'SHA-256 mismatch for %s: expected %s..., got %s. The server sent a different file '
                '(changed upstream, or an error page); nothing was saved. Check the URL and the '
                'expected hash, or download the file by hand and place it at %s.' % (url, want, actual, path))
    return path


def _html_error(url, drive):
    if drive:
        return DownloadError(
            'Google Drive refused to serve %s (an HTML page with no download confirmation came back: '
            'the daily download quota is exceeded or the file is not shared publicly). Download the file '
            'by hand from %s in a browser; nothing was saved.' % (url, _drive_browser_url(url)))
    return DownloadError('%s answered with an HTML page instead of the file (a login, error or captive-'
                         'portal page?); nothing was saved.' % url)


@contextlib.contextmanager
def file_lock(path, timeout=None):
    """Hold an exclusive lock on ``path + '.lock'`` (waits up to `timeout` s, default
    $GLUON_MODEL_LOCK_TIMEOUT or 300) so concurrent processes fetch a file only once."""
    if timeout is None:
        timeout = float(os.environ.get('GLUON_MODEL_LOCK_TIMEOUT', 300))
    lock_path = os.path.abspath(path) + '.lock'
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    lock = portalocker.Lock(lock_path, timeout=timeout)
    try:
        lock.acquire()
    except portalocker.AlreadyLocked as e:
        raise DownloadError(
            'timed out after %gs waiting for the lock %s: another process is downloading this file. '
            'A lock is released when the process holding it ends, even if it is killed, so there is nothing to '
            'delete: wait, or allow more time with GLUON_MODEL_LOCK_TIMEOUT (seconds).' % (timeout, lock_path)) from e
    try:
        yield lock_path
    finally:
        lock.release()  # the .lock file stays: deleting it would race with a process about to lock it


def sha256_file(path):
    return file_digest(path, 'sha256')


def fetch_one(cand, folder, progress=True, retries=5, backoff=1.0):
    """``folder/cand['filename']`` fetched from ``cand['url']`` (under :func:`file_lock`) and returned. A file
    already there is reused when it has the hash (a full digest or the prefix in timm's file names), or when no
    hash is known; else it is downloaded again. Raises DownloadError."""
    path = os.path.join(folder, cand['filename'])
    want = cand.get('sha256')
    with file_lock(path):
        if os.path.isfile(path) and (not want or sha256_file(path).startswith(want.lower())):
            return path
        return download(cand['url'], path, sha256=want, retries=retries, progress=progress, backoff=backoff)


def fetch_first(candidates, folder, progress=True, retries=5, backoff=1.0):
    """Fetch the first candidate that works; return ``(path, candidate)``.

    candidates: dicts ``{'url', 'filename', 'sha256' (digest, prefix or None)}``, tried in order into
    ``folder/filename`` with :func:`fetch_one`, so parallel processes download a file once.
    """
    failures = []
    for cand in candidates:
        try:
            return fetch_one(cand, folder, progress, retries, backoff), cand
        except DownloadError as e:
            failures.append('%s -> %s' % (cand['url'], ' '.join(str(e).split())))
    raise DownloadError('could not fetch any of %d candidate URL(s) into %s:\n%s'
                        % (len(failures), folder, '\n'.join(failures) or '(no candidates given)'))
