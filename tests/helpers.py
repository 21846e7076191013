"""Paths shared by the tests (the test folders mirror the package: tests/convert, tests/train, ...)."""
import os

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
