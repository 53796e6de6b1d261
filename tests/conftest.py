"""Shared fixtures and Hypothesis profiles.

Hypothesis profiles (pick with the environment variable ``HYPOTHESIS_PROFILE``):

* ``ci`` (default): moderate example counts, so the whole suite stays within a few
  minutes on a 2-core machine;
* ``dev``: many more examples, for a long local run;
* ``debug``: few examples with verbose output.
"""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import HealthCheck, Verbosity, settings

_common = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("ci", max_examples=50, database=None, **_common)
settings.register_profile("dev", max_examples=400, **_common)
settings.register_profile(
    "debug", max_examples=10, verbosity=Verbosity.verbose, **_common
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# A suite started in the background of a shell without job control (nohup, a
# CI runner's `cmd &`) inherits SIGINT ignored, and so would every command the
# tests start: an ignored SIGINT survives exec, so their Ctrl-C tests would
# see a process that cannot be interrupted.  A handler does not survive exec:
# installing Python's own here gives every child the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def build_index(tmp_path):
    """``build_index(keys, algorithm=None, width=None, **kw) -> Path`` in tmp_path.

    Each call writes a new file (index0.hlx, index1.hlx, ...)."""
    from utils import build

    counter = iter(range(10**6))

    def _build(keys, algorithm=None, width=None, **kw):
        return build(
            tmp_path,
            keys,
            algorithm=algorithm,
            width=width,
            name=f"index{next(counter)}.hlx",
            **kw,
        )

    return _build
