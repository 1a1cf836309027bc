"""Browser tests of the web client (a package, so that its conftest never shadows
tests/functional/conftest.py, which the functional tests import as `conftest`)."""
