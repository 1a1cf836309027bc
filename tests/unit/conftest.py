"""Fixtures shared by the unit tests."""
import pytest

from corekit import new_loop


@pytest.fixture
def loop():
    """An event loop the code under test schedules on (tests/unit/core, tests/unit/bus)."""
    lp = new_loop()
    yield lp
    lp.close()
