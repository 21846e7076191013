"""Running a Gluon block on numpy batches, and the exported MXNet graphs: reloading one, reading its nodes."""
import json

import numpy as np

__all__ = ['run_batches', 'prepared', 'load_exported', 'graph_nodes', ]


def run_batches(block, x, batch):
    """Logits of ``block`` on the numpy batch ``x``, ``batch`` images at a time, as float32 numpy."""
    import mxnet as mx
    out = []
    for i in range(0, len(x), batch):
        out.append(block(mx.nd.array(x[i:i + batch], dtype=x.dtype)).astype('float32').asnumpy())
    return np.concatenate(out, axis=0)


def prepared(net, size):
    """Hybridize and run once: the cached graph that export, quantization and AMP need."""
    import mxnet as mx
    net.hybridize()
    net(mx.nd.zeros((1, 3, size, size))).wait_to_read()
    return net


def load_exported(prefix):
    """An exported ``PREFIX-symbol.json`` + ``PREFIX-0000.params``, reloaded with ``SymbolBlock.imports`` (CPU)."""
    import mxnet as mx
    return mx.gluon.SymbolBlock.imports(prefix + '-symbol.json', ['data'], prefix + '-0000.params', ctx=mx.cpu())


def graph_nodes(symbol_json):
    """The operator nodes (not the variables) of an exported ``-symbol.json``."""
    with open(symbol_json) as f:
        return [n for n in json.load(f)['nodes'] if n['op'] != 'null']
