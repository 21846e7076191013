"""How this project runs an OpenVINO model on the CPU: the ``openvino`` engine of ``predict`` / ``load_predictor``
and the benchmark's OpenVINO rows both call :class:`OpenVinoRunner`, so the benchmark times what ``predict`` runs.

It imports numpy and (when used) openvino, nothing of the package: the benchmark's OpenVINO children load this
file by its path and hold OpenVINO alone.
"""
import numpy as np

__all__ = ['OpenVinoRunner', 'cpu_config', ]


def cpu_config(precision='f32', threads=None):
    """CPU plugin properties: ``precision`` (the plugin's default on CPUs with AMX or avx512_bf16 is bf16, ~0.8
    off in logits, so fp32 IR is compiled f32 here), the LATENCY hint (one stream over all cores) and, when given,
    the thread count."""
    config = {'INFERENCE_PRECISION_HINT': precision, 'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = int(threads)
    return config


class OpenVinoRunner:
    """``runner(x)``: the logits (numpy) of a float32 (N, 3, H, W) batch, from an OpenVINO model (``ov.Model``,
    batch axis dynamic) compiled for the CPU with ``config`` (:func:`cpu_config`), one synchronous request.

    A batch size that comes a second time (a predictor's full batches, single images one after another) gets a
    copy of the model compiled for it with a static shape, for at most ``max_static`` sizes: the CPU plugin then
    skips its shape computations at every call: 1.12-1.19x at batch 1 (``scripts/measure_openvino_modes.py``,
    ReXNet-1.0x, 224 px); at batch 32 static or dynamic, one request or the batch split over THROUGHPUT streams,
    all came within this machine's noise, so one request it is. Compiling costs ~0.5 s, not spent on a size seen
    once (the parity check's batches of 1 and 3)."""

    def __init__(self, model, config=None, max_static=4, core=None):
        import openvino as ov
        self.core = core or ov.Core()
        self.model, self.config, self.max_static = model, dict(config or cpu_config()), max_static
        self.dynamic = self._compile(model)
        self.static = {}
        self._seen = set()

    def _compile(self, model):
        compiled = self.core.compile_model(model, 'CPU', self.config)
        return compiled, compiled.create_infer_request()

    def _static_model(self, n):
        import openvino as ov
        model = self.model.clone()
        rest = list(model.input(0).get_partial_shape())[1:]
        model.reshape({model.input(0): ov.PartialShape([n] + rest)})
        return model

    def compiled_for(self, n):
        """(compiled model, infer request) that runs a batch of ``n``."""
        if n in self.static:
            return self.static[n]
        if n in self._seen and len(self.static) < self.max_static:
            self.static[n] = self._compile(self._static_model(n))
            return self.static[n]
        self._seen.add(n)
        return self.dynamic

    def __call__(self, x):
        compiled, request = self.compiled_for(len(x))
        return np.array(request.infer({0: x})[compiled.output(0)])
