"""The package's architecture, checked: dependencies run one way, no import cycles, no oversized module or class.

Every ``import`` in rexnet_gluon is read with ``ast`` (function-local imports included: most heavy imports here
are lazy) and resolved to a unit of the layer table below. A unit may import itself and units of a lower rank,
never a unit of its own rank or above: so ``train`` and ``deploy`` cannot import each other, and the network
imports nothing of ours. The same rules are run on small made-up trees to show the checks can fail.
"""
import ast
import os
import textwrap

import pytest

from helpers import REPO

PACKAGE = 'rexnet_gluon'

# unit -> rank; the package's own __init__.py files say the same in words.
LAYERS = {
    'network': 0,     # spec.py, model.py: the ReXNet itself
    'utils': 0,       # atomic writes, GluonCV import beside torch, warning filters: no ReXNet knowledge
    'convert': 1,     # checkpoint reading, name mapping, parity, PyTorch references, pt2mx CLI
    'zoo': 2,         # model names, pretrained weights (download, cache)
    'gluoncv': 3,     # registration in GluonCV's zoo, the script wrapper
    'train': 4,       # training, fine-tuning, verification
    'deploy': 4,      # fast path, predictor, exports, benchmark
    'api': 5,         # rexnet_gluon/__init__.py and __main__.py: the public face and the command dispatcher
}
NETWORK_MODULES = ('spec', 'model', 'norm')
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 150


def unit_of(module):
    """'rexnet_gluon.train.loop' -> 'train'; 'rexnet_gluon.model' -> 'network'; 'rexnet_gluon' -> 'api'."""
    parts = module.split('.')
    if len(parts) == 1 or parts[1] in ('__init__', '__main__'):
        return 'api'
    return 'network' if parts[1] in NETWORK_MODULES else parts[1]


def package_modules(root):
    """{dotted module name: file path} of every .py under root/PACKAGE."""
    found = {}
    for folder, _, files in os.walk(os.path.join(root, PACKAGE)):
        for f in files:
            if f.endswith('.py'):
                rel = os.path.relpath(os.path.join(folder, f), root)[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                found['.'.join(rel)] = os.path.join(folder, f)
    return found


def imports_of(module, path, modules):
    """The package modules that ``module`` imports, resolved (``from . import x`` names module x if it exists)."""
    is_pkg = os.path.basename(path) == '__init__.py'
    tree = ast.parse(open(path).read(), path)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split('.')[:len(module.split('.')) - node.level + (1 if is_pkg else 0)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from pkg import mod` imports pkg.mod; `from pkg import name` imports pkg itself
            subs = ['%s.%s' % (target, a.name) for a in node.names]
            targets = [t for t in subs if t in modules]
            if len(targets) < len(subs):
                targets.append(target)
        else:
            continue
        for t in targets:
            if t != PACKAGE and not t.startswith(PACKAGE + '.'):
                continue
            while t not in modules and '.' in t:
                t = t.rsplit('.', 1)[0]    # `from pkg.mod import func` -> pkg.mod
            out.add(t)
    out.discard(module)
    return out


def import_graph(root):
    modules = package_modules(root)
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def layer_violations(graph):
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            us, ud = unit_of(src), unit_of(dst)
            if ud == 'api' and us != 'api':
                bad.append('%s imports %s (the public API is the top layer)' % (src, dst))
            elif us != ud and LAYERS[ud] >= LAYERS[us]:
                bad.append('%s (%s, rank %d) imports %s (%s, rank %d)' % (src, us, LAYERS[us], dst, ud, LAYERS[ud]))
    return bad


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def oversized(root, max_module=MAX_MODULE_LINES, max_class=MAX_CLASS_LINES):
    bad = []
    for module, path in sorted(package_modules(root).items()):
        text = open(path).read()
        n = text.count('\n')
        if n > max_module:
            bad.append('%s: %d lines (> %d)' % (module, n, max_module))
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > max_class:
                bad.append('%s.%s: %d lines (> %d)' % (module, node.name, node.end_lineno - node.lineno + 1,
                                                       max_class))
    return bad


# ------------------------------------------------------------------------------------------ the real package
def test_every_unit_is_in_the_layer_table():
    units = {unit_of(m) for m in package_modules(REPO)}
    assert units <= set(LAYERS), 'add %s to LAYERS (and to the README layout)' % sorted(units - set(LAYERS))
    assert units == set(LAYERS), 'LAYERS names units that no longer exist: %s' % sorted(set(LAYERS) - units)


def test_dependencies_run_one_way():
    graph = import_graph(REPO)
    assert sum(len(t) for t in graph.values()) > 30, 'the import reader found almost nothing: it is broken'
    assert layer_violations(graph) == []


def test_no_import_cycles():
    assert cycles(import_graph(REPO)) == []


def test_no_module_or_class_is_oversized():
    assert oversized(REPO) == []


def test_every_subpackage_says_what_it_holds_and_may_import():
    for module, path in package_modules(REPO).items():
        if os.path.basename(path) == '__init__.py' and module != PACKAGE:
            doc = ast.get_docstring(ast.parse(open(path).read())) or ''
            assert 'May import' in doc, '%s/__init__.py must say what the package may import' % module


# ------------------------------------------------------------------------ the checks fail on bad trees
def _tree(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / PACKAGE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(tmp_path)


def test_checker_catches_upward_and_sideways_imports(tmp_path):
    root = _tree(tmp_path, {
        '__init__.py': 'from .model import Net\n',
        'model.py': 'def build():\n    from .zoo.registry import MODELS\n',      # network -> zoo: upward, lazy
        'zoo/__init__.py': '', 'zoo/registry.py': 'from ..model import Net\n',
        'train/__init__.py': '', 'train/loop.py': 'import rexnet_gluon.deploy.fast as fast\n',   # peer
        'deploy/__init__.py': '', 'deploy/fast.py': 'from .. import model\nfrom rexnet_gluon import get_model\n',
    })
    bad = layer_violations(import_graph(root))
    assert any(b.startswith('rexnet_gluon.model (network') and 'zoo.registry' in b for b in bad), bad
    assert any(b.startswith('rexnet_gluon.train.loop') and 'deploy.fast' in b for b in bad), bad
    assert any(b.startswith('rexnet_gluon.deploy.fast imports rexnet_gluon ') for b in bad), bad
    assert len(bad) == 3, bad      # deploy.fast -> model and zoo.registry -> model are allowed


def test_checker_catches_cycles_and_size(tmp_path):
    root = _tree(tmp_path, {
        '__init__.py': '',
        'zoo/__init__.py': 'from .a import f\n',
        'zoo/a.py': 'from .b import g\n' + 'x = 1\n' * 20,
        'zoo/b.py': 'def g():\n    from . import a\n',
        'zoo/c.py': 'class Big:\n' + '    x = 1\n' * 12,
    })
    assert cycles(import_graph(root)) == [['rexnet_gluon.zoo.a', 'rexnet_gluon.zoo.b']]
    assert oversized(root, max_module=15, max_class=10) == ['rexnet_gluon.zoo.a: 21 lines (> 15)', 'rexnet_gluon.zoo.c.Big: 13 lines (> 10)']
