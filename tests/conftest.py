"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3/Kinesis API as a real server process on 127.0.0.1 for the whole session."""
    from awsfakes import MotoServer

    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    from awsfakes import FAKE_CREDENTIALS

    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(moto_server, aws_env):
    """A boto3 S3 client on the moto server with a fresh, empty bucket `dmd-test`."""
    import boto3

    moto_server.reset()
    client = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    client.create_bucket(Bucket="dmd-test")
    return client


@pytest.fixture
def fault_proxy(moto_server):
    from awsfakes import FaultProxy

    proxy = FaultProxy(moto_server.url).start()
    yield proxy
    proxy.stop()
