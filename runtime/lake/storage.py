"""Where containers and error documents go: a small interface, a local directory (the
embedded default) and S3. Both write the same keys, so a local lake can be synced to S3."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class StorageError(RuntimeError):
    """A write or read that failed; the records involved must be reported for retry.

    `permanent`: retrying cannot help until someone changes something (access denied, no such
    bucket, no credentials, a file where a folder must be); `cause` names it in a few words (an
    AWS error code or an OS error name), never a record value.
    """

    def __init__(self, message: str, cause: str = "", permanent: bool = False) -> None:
        super().__init__(message)
        self.cause = cause or message
        self.permanent = permanent


# Causes no retry can fix: the configuration, the credentials or the lake itself must change.
PERMANENT_S3_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "NoSuchBucket",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "AccountProblem",
        "KMS.DisabledException",
        "KMS.NotFoundException",
    }
)
PERMANENT_OS_ERRORS = frozenset({errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST, errno.EROFS, errno.EISDIR})
STALE_TEMPORARY_SECONDS = 15 * 60  # a temporary file lives for one write: one this old was left by a killed run


def _os_error(message: str, e: OSError) -> StorageError:
    name = errno.errorcode.get(e.errno or 0, type(e).__name__)
    cause = f"{name} ({e.strerror})" if e.strerror else name
    return StorageError(f"{message}: {e.strerror or e}", cause, e.errno in PERMANENT_OS_ERRORS)


def _s3_error(message: str, e: Exception) -> StorageError:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(e, ClientError):
        code = str(e.response.get("Error", {}).get("Code", "")) or "ClientError"
        return StorageError(f"{message}: {e}", code, code in PERMANENT_S3_CODES or code in ("403", "404"))
    if isinstance(e, NoCredentialsError | PartialCredentialsError):
        return StorageError(f"{message}: {e}", "NoCredentials", True)
    return StorageError(f"{message}: {e}", type(e).__name__, False)  # connection, timeout: may pass


TEMPORARY_PREFIX = ".tmp-"  # a local write in progress (hidden: readers and Athena skip it)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # seconds since the epoch (S3: LastModified; locally: mtime)


class Storage(Protocol):
    def put(self, key: str, body: bytes, content_type: str) -> str:
        """Store `body` at `key` (overwriting); returns a location URL."""
        ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under `prefix` (a folder-like prefix ending in '/'), sorted."""
        ...

    def delete(self, key: str) -> None: ...


class LargeObjects(Protocol):
    """What the compactor needs beyond `Storage`: sizes and ages, objects streamed through
    local files (a merged object never has to fit in memory), a create-only put (leases)."""

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]: ...

    def put_file(self, key: str, path: Path, content_type: str) -> str: ...

    def get_file(self, key: str, path: Path) -> None: ...

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool:
        """Create `key` only if no object has it; False if one does."""
        ...


class LocalStorage:
    """A directory standing in for a bucket. Writes are atomic (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._swept: set[Path] = set()  # folders whose stale temporary files were removed
        # key folder -> its resolved path, checked to be inside the root: resolving a whole path
        # (an lstat per component) was a third of reading or deleting a small object
        self._folders: dict[str, Path] = {}
        self._folders_root = self.root

    def _path(self, key: str) -> Path:
        if key.startswith("/"):
            raise StorageError(f"key {key!r} leaves the lake root")
        folder, _, name = key.rpartition("/")
        if self._folders_root is not self.root:
            self._folders, self._folders_root = {}, self.root
        base = self._folders.get(folder)
        if base is None:
            base = self._resolve(folder, key)
            self._folders[folder] = base
        path = base / name
        if name in ("", ".", "..") or path.is_symlink():
            return self._resolve(key, key)
        return path

    def _resolve(self, relative: str, key: str) -> Path:
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError(f"key {key!r} leaves the lake root")
        return path

    def put(self, key: str, body: bytes, content_type: str) -> str:
        return self._write(key, lambda out: out.write(body))

    def _write(self, key: str, write: Any) -> str:
        """`write(file)` into a temporary file beside `key`, renamed over it when complete."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.parent not in self._swept:
                self._sweep(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX)
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise _os_error(f"cannot write {path}", e) from e
        return path.as_uri()

    def _sweep(self, folder: Path) -> None:
        """Remove the temporary files a killed run left in `folder` (once per folder and process;
        a file younger than a few minutes may be another writer's, in use)."""
        cutoff = time.time() - STALE_TEMPORARY_SECONDS
        for tmp in folder.glob(TEMPORARY_PREFIX + "*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass  # gone already, or not ours to remove: the next sweep tries again
        self._swept.add(folder)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as e:
            raise _os_error(f"cannot read {key}", e) from e

    def list(self, prefix: str) -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return iter(())
        return iter(sorted(self._walk(str(base), str(base.relative_to(self.root).as_posix()))))

    def _walk(self, folder: str, key: str) -> Iterator[str]:
        """Keys of the files under `folder` (`key` its own key, "." for the root), temporary ones
        left out; symbolic links to folders are not followed (as `Path.rglob`)."""
        with os.scandir(folder) as entries:
            for entry in entries:
                name = entry.name if key == "." else f"{key}/{entry.name}"
                if entry.is_dir() and not entry.is_symlink():
                    yield from self._walk(entry.path, name)
                elif entry.is_file() and not entry.name.startswith(TEMPORARY_PREFIX):
                    yield name

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise _os_error(f"cannot delete {key}", e) from e

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        root = str(self.root)
        for key in self.list(prefix):
            try:
                st = os.stat(f"{root}/{key}")
            except FileNotFoundError:  # deleted since it was listed
                continue
            yield ObjectInfo(key, st.st_size, st.st_mtime)

    def put_file(self, key: str, path: Path, content_type: str) -> str:
        with path.open("rb") as src:
            return self._write(key, lambda out: shutil.copyfileobj(src, out, 1 << 20))

    def get_file(self, key: str, path: Path) -> None:
        try:
            shutil.copyfile(self._path(key), path)
        except OSError as e:
            raise _os_error(f"cannot read {key}", e) from e

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as e:
            raise StorageError(f"cannot write {path}: {e}") from e
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        return True

    def lock(self, key: str) -> Any:
        """An exclusive lock on the file `key` (fcntl), or None if another process holds it.
        The kernel releases it when the holder exits, killed or not. `release()` the result:
        that removes the file too (a lock taken on a file since removed is taken again)."""
        import fcntl

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = path.open("a+b")
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                return None
            try:
                same = os.fstat(f.fileno()).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if same:
                return _FileLock(path, f)
            f.close()  # its holder removed it after we opened it: lock the new file


class _FileLock:
    def __init__(self, path: Path, f: Any) -> None:
        self.path, self.f = path, f

    def release(self) -> None:
        self.path.unlink(missing_ok=True)  # while still holding it, so no one locks a removed file
        self.f.close()


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
            raise _s3_error(f"cannot write s3://{self.bucket}/{full}", e) from e
        return f"s3://{self.bucket}/{full}"

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (BotoCoreError, ClientError) as e:
            raise _s3_error(f"cannot read s3://{self.bucket}/{self._key(key)}", e) from e

    def list(self, prefix: str) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.base) + 1 if self.base else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            keys = [obj["Key"][strip:] for page in pages for obj in page.get("Contents", ())]
        except (BotoCoreError, ClientError) as e:
            raise _s3_error(f"cannot list s3://{self.bucket}/{self._key(prefix)}", e) from e
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as e:
            raise _s3_error(f"cannot delete s3://{self.bucket}/{self._key(key)}", e) from e

    def list_info(self, prefix: str) -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        strip = len(self.base) + 1 if self.base else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
            infos = [
                ObjectInfo(obj["Key"][strip:], obj["Size"], obj["LastModified"].timestamp())
                for page in pages
                for obj in page.get("Contents", ())
            ]
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot list s3://{self.bucket}/{self._key(prefix)}: {e}") from e
        return iter(sorted(infos, key=lambda i: i.key))

    def put_file(self, key: str, path: Path, content_type: str) -> str:
        """Streamed from the file (multipart above boto3's 8 MiB threshold)."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            self.client.upload_file(str(path), self.bucket, full, ExtraArgs={"ContentType": content_type})
        except (BotoCoreError, ClientError, S3UploadFailedError) as e:
            raise StorageError(f"cannot write s3://{self.bucket}/{full}: {e}") from e
        return f"s3://{self.bucket}/{full}"

    def get_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except (BotoCoreError, ClientError) as e:
            raise StorageError(f"cannot read s3://{self.bucket}/{self._key(key)}: {e}") from e

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool:
        """S3's conditional write (`If-None-Match: *`): 412 if the key exists; 409 if a
        concurrent conditional write to it is in flight (that one wins)."""
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=body, ContentType=content_type, IfNoneMatch="*")
        except ClientError as e:
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (409, 412) or e.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                return False
            raise StorageError(f"cannot write s3://{self.bucket}/{full}: {e}") from e
        except BotoCoreError as e:
            raise StorageError(f"cannot write s3://{self.bucket}/{full}: {e}") from e
        return True


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


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")


def bucket_problem(name: str) -> str | None:
    """Why S3 would reject `name` as a general purpose bucket's name, or None."""
    if not _BUCKET.match(name):
        return "3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(name)
        return "not an IP address"
    except ValueError:
        pass
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        return "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3, --x-s3)"
    return None


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be an S3 endpoint, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"not a URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    return None


def open_storage(location: str, endpoint_url: str | None = None, policy: S3Policy | None = None) -> Storage:
    """`s3://bucket[/base]` or a local directory path; raises ValueError for a bad bucket name or
    endpoint."""
    if endpoint_url and (problem := endpoint_problem(endpoint_url)):
        raise ValueError(f"S3 endpoint {endpoint_url!r}: {problem}")
    if location.startswith("s3://"):
        bucket, _, base = location[5:].partition("/")
        if problem := bucket_problem(bucket):
            raise ValueError(f"bucket name {bucket!r}: {problem}")
        return S3Storage(bucket, base, endpoint_url, policy=policy)
    return LocalStorage(Path(location))
