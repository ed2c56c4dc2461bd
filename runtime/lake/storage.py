"""Where containers and error documents go: a small interface, a local directory (the
embedded default) and S3. Both write the same keys, so a local lake can be synced to S3."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class StorageError(RuntimeError):
    """A write or read that failed; the records involved must be reported for retry."""


class Storage(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Store `body` at `key` (overwriting); returns a location URL."""
        ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (a folder-like prefix ending in '/'), sorted."""
        ...

    def delete(self, key: str) -> None: ...


class LocalStorage:
    """A directory standing in for a bucket. Writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or key.startswith("/"):
            raise StorageError(f"key {key!r} leaves the lake root")
        return path

    def put(self, key: str, body: bytes, content_type: str) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.replace(tmp, path)
        except OSError as e:
            raise StorageError(f"cannot write {path}: {e}") from e
        return path.as_uri()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as e:
            raise StorageError(f"cannot read {key}: {e}") from e

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return iter(())
        keys = (p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())
        return iter(sorted(k for k in keys if not Path(k).name.startswith(".tmp-")))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Storage:
    """An S3 bucket through boto3, with the standard, bounded retry policy."""

    def __init__(
        self,
        bucket: str,
        base: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        policy: S3Policy | None = None,
    ) -> None:
        self.bucket = bucket
        self.base = base.strip("/")
        self.endpoint_url = endpoint_url
        self.policy = policy
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use (~100-150 ms: botocore loads the S3 model),
        so importing the Lambda handler stays fast; puts from several threads share one."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = s3_client(self.endpoint_url, self.policy)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.base}/{key}" if self.base else key

    def put(self, key: str, body: bytes, content_type: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=body, ContentType=content_type)
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot write s3://{self.bucket}/{full}: {e}") from e
        return f"s3://{self.bucket}/{full}"

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot read s3://{self.bucket}/{self._key(key)}: {e}") from e

    def list(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.base) + 1 if self.base else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            keys = [obj["Key"][strip:] for page in pages for obj in page.get("Contents", ())]
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot list s3://{self.bucket}/{self._key(prefix)}: {e}") from e
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot delete s3://{self.bucket}/{self._key(key)}: {e}") from e


@dataclass(frozen=True)
class S3Policy:
    """How hard one S3 request is tried: botocore's standard retry mode (exponential backoff
    with jitter, retrying throttling, 5xx, timeouts and connection errors), bounded."""

    max_attempts: int = 4  # in total: 1 try + 3 retries
    connect_timeout: float = 5
    read_timeout: float = 20


def s3_client(endpoint_url: str | None = None, policy: S3Policy | None = None) -> Any:
    import boto3
    from botocore.config import Config

    policy = policy or S3Policy()
    config = Config(
        # total_max_attempts counts the first try; botocore's `max_attempts` would count retries only
        retries={"mode": "standard", "total_max_attempts": policy.max_attempts},
        connect_timeout=policy.connect_timeout,
        read_timeout=policy.read_timeout,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def open_storage(location: str, endpoint_url: str | None = None, policy: S3Policy | None = None) -> Storage:
    """`s3://bucket[/base]` or a local directory path."""
    if location.startswith("s3://"):
        bucket, _, base = location[5:].partition("/")
        return S3Storage(bucket, base, endpoint_url, policy=policy)
    return LocalStorage(Path(location))
