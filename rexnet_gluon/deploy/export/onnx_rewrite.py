"""Rewrites of mx2onnx's graph that keep its results and cost runtimes less.

The partial shortcut of a ReXNet block (``out[:, :C] += x``) is written in the network as ``out + pad(x)``, and
because MXNet's ``pad`` only pads axes >= 2 it views ``x`` as ``(N, 1, C, H*W)`` first and back afterwards. mx2onnx
keeps that literally: ``Reshape -> Unsqueeze -> Pad -> Reshape(Shape(out))``, six nodes where ONNX's ``Pad`` of
axis 1 is one. OpenVINO runs the literal form as planar-layout reshapes with reorders around them and shape
computations at every call (measured: 37 reorders against 2 in timm's graph). :func:`direct_channel_pads` replaces
each such chain by the one ``Pad``; the exported file is then checked against MXNet like any other.
"""
import numpy as np

__all__ = ['direct_channel_pads', ]


def _const(graph, name):
    """The value of initializer ``name`` as numpy, or None if it is not one."""
    from onnx import numpy_helper
    for t in graph.initializer:
        if t.name == name:
            return numpy_helper.to_array(t)
    return None


def _static_dims(shapes, name):
    """The dims of value ``name`` after shape inference (None for a symbolic one), or None if unknown."""
    info = shapes.get(name)
    if info is None or not info.type.tensor_type.HasField('shape'):
        return None
    return [d.dim_value if d.HasField('dim_value') else None for d in info.type.tensor_type.shape.dim]


def _unsqueeze_axes(graph, node):
    if len(node.input) > 1:                                  # opset >= 13: the axes are an input
        axes = _const(graph, node.input[1])
        return None if axes is None else [int(a) for a in axes.ravel()]
    return [int(a) for attr in node.attribute if attr.name == 'axes' for a in attr.ints]


class _Graph:
    """Producers and consumers of the values of an ONNX graph."""

    def __init__(self, graph):
        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)

    def only_consumer(self, value):
        users = self.consumers.get(value, [])
        return users[0] if len(users) == 1 else None

    def made_by(self, value, op_type):
        node = self.producer.get(value)
        return node if node is not None and node.op_type == op_type else None


def _match(g, shapes, pad):
    """The chain around ``pad`` if it is the shortcut's (nodes to remove, x, channels to add, output), else None."""
    unsq = g.made_by(pad.input[0], 'Unsqueeze')
    flat = unsq is not None and g.made_by(unsq.input[0], 'Reshape')
    back = g.only_consumer(pad.output[0])
    if not flat or back is None or back.op_type != 'Reshape' or back.input[0] != pad.output[0]:
        return None
    if g.only_consumer(unsq.output[0]) is not pad or g.only_consumer(flat.output[0]) is not unsq:
        return None
    target = _const(g.graph, flat.input[1])
    pads = _const(g.graph, pad.input[1])
    value = _const(g.graph, pad.input[2]) if len(pad.input) > 2 and pad.input[2] else np.zeros(1)
    mode = [a.s for a in pad.attribute if a.name == 'mode']
    if (target is None or target.tolist() != [0, 0, -1] or _unsqueeze_axes(g.graph, unsq) != [1]
            or pads is None or pads.shape != (8,) or mode not in ([], [b'constant']) or value is None
            or value.size != 1 or float(value.ravel()[0]) != 0.0):
        return None
    extra = int(pads[6])
    if extra <= 0 or np.count_nonzero(pads) != 1:            # only the end of the (viewed) channel axis
        return None
    like = g.made_by(back.input[1], 'Shape')                # reshape_like(out): the shape of ``out``
    x = _static_dims(shapes, flat.input[0])
    y = _static_dims(shapes, like.input[0]) if like is not None else _static_dims(shapes, back.output[0])
    if x is None or y is None or len(x) != 4 or len(y) != 4 or None in x[1:] or y[1:] != [x[1] + extra] + x[2:]:
        return None                                          # the view back must be (N, C + extra, H, W)
    return [flat, unsq, pad, back], flat.input[0], extra, back.output[0]


def _drop_unused(graph):
    """Remove nodes whose outputs nobody uses (the Shape ops feeding removed Reshapes) and unused initializers."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def _replace_first(model):
    """Replace the first provable chain of ``model``; False if there is none. One at a time: shape inference stops
    at the first Reshape to a computed shape, and each rewrite lets it see one block further."""
    import onnx
    from onnx import helper, numpy_helper
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: v for v in list(inferred.value_info) + list(inferred.input) + list(inferred.output)}
    g = _Graph(graph)
    found = next((m for m in (_match(g, shapes, n) for n in graph.node if n.op_type == 'Pad') if m is not None),
                 None)
    if found is None:
        return False
    chain, x, extra, y = found
    pads_name = chain[2].name + '_channel_pads'
    graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, extra, 0, 0], np.int64), pads_name))
    pad = helper.make_node('Pad', [x, pads_name], [y], name=chain[2].name + '_channels', mode='constant')
    removed = {id(node) for node in chain[:-1]}
    nodes = [pad if n is chain[-1] else n for n in graph.node if id(n) not in removed]
    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]   # copies, not views of the old list
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)
    return True


def direct_channel_pads(model):
    """Replace each ``Reshape -> Unsqueeze -> Pad -> Reshape`` shortcut chain of ``model`` (an onnx ModelProto,
    changed in place) by one ``Pad`` of the channel axis with zeros. Only chains whose shapes prove the rewrite
    exact are touched (shape inference: x ``(N, C, H, W)`` comes back as ``(N, C + k, H, W)``). Returns the number
    of chains replaced."""
    replaced = 0
    while _replace_first(model):
        replaced += 1
    return replaced
