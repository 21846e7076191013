"""Deployment: the fast CPU path, the predictor, verified exports (symbol, ONNX, INT8, bfloat16, fast) and the
speed benchmark.

Modules: ``fast``, ``images`` (files -> input), ``runtimes`` (inference engines and auto's choice),
``openvino_runner`` (how OpenVINO runs, shared with the benchmark), ``engine_cache`` (exports kept between runs),
``predictor`` (``load_predictor``), ``predict`` (the command), ``errors``, ``export/`` (formats, CLI),
``benchmark/``.

May import: the network, ``convert`` (its parity rule), ``zoo``, ``gluoncv``, ``utils`` (never ``train``: training
and deployment are peers).
"""
