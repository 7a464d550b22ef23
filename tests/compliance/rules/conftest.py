"""The rule engine is pure Python: these tests need neither Django nor a database.

tests/conftest.py has autouse fixtures for the Django tests (they use pytest-django's ``settings``);
they are replaced by no-ops here so this directory also runs without pytest-django:
``pytest tests/compliance/rules -p no:django -o addopts=""``.
"""

import pytest


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    yield


@pytest.fixture(autouse=True)
def _celery_eager_by_default():
    yield
