"""Helpers for the tf-generator-tutorials notebooks.

Import the modules you need, for example ``from helpers import signatures, plotting``.
Importing this package has no side effects and does not import TensorFlow.
"""
