"""Tests of the cluster infrastructure (a package, so that its conftest is not the `conftest` module the functional tests import from)."""
