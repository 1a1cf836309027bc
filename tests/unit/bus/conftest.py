from corekit import loop  # noqa: F401 - the fixture
