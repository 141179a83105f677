"""Shared fixtures: the embedded model is loaded once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOOLKIT_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def model():
    import toolkit as tk

    return tk.load_model()


@pytest.fixture(scope="session")
def encoder():
    import toolkit as tk

    return tk.load_encoder()
