"""The README's set-up command is what .ci/run runs (so CI proves the documented set-up, Horovod build included)."""
import os
import re

from helpers import REPO


def test_readme_setup_command_is_what_ci_runs():
    readme = open(os.path.join(REPO, 'README.md')).read()
    documented = [l.split('#')[0].strip() for l in readme.splitlines() if l.rstrip().endswith('# set-up')]
    assert len(documented) == 1, documented
    ci = re.search(r'if ! \{ (.*?); \} >"\$log" 2>&1; then', open(os.path.join(REPO, '.ci', 'run')).read())
    assert ci, '.ci/run no longer has its set-up line'
    assert ci.group(1) == documented[0]
    assert 'bash scripts/install_horovod.sh' in documented[0]
