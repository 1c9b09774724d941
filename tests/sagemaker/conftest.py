"""Fixtures of the SageMaker tests; the helpers live in ``smkit`` (a unique module name, so that
test modules can import them: every test folder has a ``conftest`` module)."""

from smkit import aws  # noqa: F401  (a fixture)
