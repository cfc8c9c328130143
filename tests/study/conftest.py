"""The PostgreSQL server the storage tests share (.ci/postgres.sh starts it)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("TUNER_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("TUNER_TEST_POSTGRES_URL is not set: .ci/run must source .ci/postgres.sh")
    pytest.skip("no PostgreSQL server: as root, `source .ci/postgres.sh` then run pytest")
