"""rexnet_gluon.deploy.export.onnx_rewrite on hand-made ONNX graphs: the shortcut chain becomes one channel Pad with
the same outputs in ONNX Runtime, and chains the rewrite cannot prove exact are left alone."""
import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rexnet_gluon.deploy.export.onnx_rewrite import direct_channel_pads  # noqa: E402

C, EXTRA, H, W = 5, 3, 4, 6


def _shortcut_model(pads=(0, 0, 0, 0, 0, 0, EXTRA, 0), flat_shape=(0, 0, -1), value=0.0, out_channels=C + EXTRA):
    """y = conv(x) + reshape_like(pad(unsqueeze(reshape(x, flat_shape), 1)), conv(x)): what mx2onnx writes for a
    ReXNet block's partial shortcut; batch axis dynamic, opset 13."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(rng.randn(out_channels, C, 1, 1).astype(np.float32), 'w'),
             numpy_helper.from_array(np.array(flat_shape, np.int64), 'flat'),
             numpy_helper.from_array(np.array([1], np.int64), 'axis'),
             numpy_helper.from_array(np.array(pads, np.int64), 'pads'),
             numpy_helper.from_array(np.array(value, np.float32), 'value')]
    nodes = [helper.make_node('Conv', ['x', 'w'], ['out']),
             helper.make_node('Reshape', ['x', 'flat'], ['x3']),
             helper.make_node('Unsqueeze', ['x3', 'axis'], ['x4']),
             helper.make_node('Pad', ['x4', 'pads', 'value'], ['p'], mode='constant'),
             helper.make_node('Shape', ['out'], ['like']),
             helper.make_node('Reshape', ['p', 'like'], ['pb']),
             helper.make_node('Add', ['out', 'pb'], ['y'])]
    graph = helper.make_graph(nodes, 'shortcut', [helper.make_tensor_value_info('x', TensorProto.FLOAT,
                                                                                ['N', C, H, W])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', out_channels, H, W])],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])


def _run(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    return sess.run(None, {'x': x})[0]


def test_chain_becomes_one_channel_pad_with_equal_outputs():
    model = _shortcut_model()
    x = np.random.RandomState(1).randn(2, C, H, W).astype(np.float32)
    before = _run(model, x)
    assert direct_channel_pads(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ['Conv', 'Pad', 'Add']
    (pad,) = [n for n in model.graph.node if n.op_type == 'Pad']
    pads = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[pad.input[1]]
    assert pads.tolist() == [0, 0, 0, 0, 0, EXTRA, 0, 0]                   # end of axis 1
    assert {t.name for t in model.graph.initializer} == {'w', pad.input[1]}  # the old shapes and pads dropped
    np.testing.assert_array_equal(_run(model, x), before)                  # adding zeros: bit-identical
    np.testing.assert_array_equal(_run(model, x[:1]), before[:1])          # the batch axis stays dynamic


@pytest.mark.parametrize('kwargs', [dict(pads=(0, 0, 0, 0, 0, 0, 0, EXTRA)),        # pads H*W, not C
                                    dict(pads=(0, 0, EXTRA, 0, 0, 0, 0, 0)),        # at the start of C
                                    dict(value=1.0),                                # not zeros
                                    dict(flat_shape=(0, -1, H * W // 2))],         # another view
                         ids=['other-axis', 'begin', 'nonzero', 'other-view'])
def test_chains_it_cannot_prove_are_left_alone(kwargs):
    """The rewrite is only exact for zeros added at the end of the channels of an (N, 1, C, H*W) view; every other
    graph keeps its nodes (some of these do not even run: untouched is the point)."""
    model = _shortcut_model(**kwargs)
    nodes = [n.op_type for n in model.graph.node]
    assert direct_channel_pads(model) == 0
    assert [n.op_type for n in model.graph.node] == nodes
