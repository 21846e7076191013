"""Plumbing that knows nothing about ReXNet: atomic file writes, importing GluonCV beside torch >= 2, quieting
MXNet's own warnings in the command lines.

May import: nothing of rexnet_gluon (the standard library, and mxnet / gluoncv lazily).
"""
