"""``S3Store``: dump bytes in S3-compatible object storage (``--store s3://bucket/prefix``).

When workers run on many machines, the dumps must live where every one of them reaches; an
object store is the usual answer. The store keeps the ``DumpStore`` contract of the
directory store: a dump is streamed in (a multipart upload, at most two parts in memory,
hashed on the way), kept under its sha256 (``PREFIX/ab/abcdef...``), stored once
(``head_object`` finds an existing copy), and ``local_path`` downloads it into a cache
directory because the analysis (drgn) needs a file (one download per machine, a hard link
per worker process); ``release`` removes that process's link and the download once unused.

The endpoint comes from ``--s3-endpoint`` or ``AWS_ENDPOINT_URL``, the credentials and the
region from the usual AWS environment (variables, ``~/.aws``, an instance role).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

from kdx.errors import KdxError
from kdx.fleet.store import DirectoryStore, DumpStore, Stored, TooLarge, check_key

__all__ = ["PART_SIZE", "S3Store", "open_store", "parse_s3_url"]

#: Bytes per uploaded part: S3 wants 5 MiB or more (but the last), at most 10,000 parts,
#: so 16 MiB parts reach 156 GiB while holding at most two parts in memory.
PART_SIZE = 16 << 20
_MIN_PART = 5 << 20


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (``bucket``, ``some/prefix``)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise KdxError(f"not an S3 store URL (s3://bucket/prefix): {url[:200]!r}")
    return parsed.netloc, parsed.path.strip("/")


def open_store(spec: str, *, cache: Path, endpoint: str | None = None) -> DumpStore:
    """The store ``spec`` names: ``s3://bucket/prefix`` or a directory. ``cache`` is where
    an object store's dumps are downloaded for analysis."""
    if spec.startswith("s3://"):
        bucket, prefix = parse_s3_url(spec)
        return S3Store(bucket, prefix, cache=cache, endpoint=endpoint)
    if "://" in spec:
        raise KdxError(f"unknown store {spec[:200]!r}: give a directory or s3://bucket/prefix")
    return DirectoryStore(Path(spec))


def _fail(what: str, err: Exception) -> KdxError:
    """One line for an object-store error (no traceback, no credentials)."""
    code = getattr(err, "response", {}).get("Error", {}).get("Code") if hasattr(
        err, "response") else None
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return KdxError(f"S3 store: {what} failed: {code + ': ' if code else ''}{text[:300]}")


class S3Store:
    """Dumps in ``s3://bucket/prefix``, keyed by sha256."""

    def __init__(self, bucket: str, prefix: str = "", *, cache: Path,
                 endpoint: str | None = None, part_size: int = PART_SIZE,
                 client: Any = None) -> None:
        import boto3
        from botocore.config import Config

        if part_size < _MIN_PART:
            raise ValueError(f"S3 parts are at least {_MIN_PART} bytes")
        self.bucket, self.prefix, self.part_size = bucket, prefix.strip("/"), part_size
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
        self.client = client or boto3.client(
            "s3", endpoint_url=endpoint,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def __repr__(self) -> str:
        return f"S3Store(s3://{self.bucket}/{self.prefix})"

    def object_key(self, key: str) -> str:
        check_key(key)
        name = f"{key[:2]}/{key}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _tmp_key(self) -> str:
        name = f"tmp/upload-{secrets.token_hex(12)}"
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- DumpStore --------------------------------------------------------------------

    def put(self, stream: BinaryIO, *, limit: int | None = None) -> Stored:
        from botocore.exceptions import BotoCoreError, ClientError

        digest = hashlib.sha256()
        tmp = self._tmp_key()
        upload = _Multipart(self.client, self.bucket, tmp)
        size = 0
        try:
            while part := _read_part(stream, self.part_size):
                size += len(part)
                if limit is not None and size > limit:
                    raise TooLarge(f"the upload is larger than the limit of {limit:,} bytes")
                digest.update(part)
                upload.add(part)
            upload.finish()
            key = digest.hexdigest()
            if self.exists(key):
                return Stored(key, size, False)
            self.client.copy({"Bucket": self.bucket, "Key": tmp}, self.bucket,
                             self.object_key(key))
            return Stored(key, size, True)
        except (BotoCoreError, ClientError) as err:
            raise _fail("storing a dump", err) from None
        finally:
            upload.discard()

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        except (BotoCoreError, ClientError) as err:
            raise _fail(f"reading dump {key[:12]}…", err) from None
        return body  # type: ignore[no-any-return]

    def cached(self, key: str) -> Path:
        """Where ``local_path`` puts the dump for this process: a hard link to the one
        download the machine's worker processes share, so one process releasing it never
        removes the file from under another's analysis."""
        check_key(key)
        return self.cache / f"pid-{os.getpid()}" / key

    def local_path(self, key: str) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        path, shared = self.cached(key), self.cache / key
        if path.is_file():
            return path
        path.parent.mkdir(exist_ok=True)
        try:
            os.link(shared, path)
            return path
        except FileNotFoundError:
            pass
        fd, name = tempfile.mkstemp(dir=self.cache, prefix="download-")
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.object_key(key), name)
            with contextlib.suppress(FileExistsError):
                os.link(name, shared)
            os.replace(name, path)
        except (BotoCoreError, ClientError) as err:
            _remove_if_empty(path.parent)
            raise _fail(f"downloading dump {key[:12]}…", err) from None
        finally:
            Path(name).unlink(missing_ok=True)
        return path

    def release(self, key: str) -> None:
        """Remove this process's copy from ``local_path``, and the shared download once no
        other process holds it (the object stays)."""
        path, shared = self.cached(key), self.cache / key
        path.unlink(missing_ok=True)
        _remove_if_empty(path.parent)
        with contextlib.suppress(FileNotFoundError):
            if shared.stat().st_nlink == 1:
                shared.unlink()

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self.release(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        except (BotoCoreError, ClientError) as err:
            raise _fail(f"deleting dump {key[:12]}…", err) from None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _fail(f"looking for dump {key[:12]}…", err) from None
        except BotoCoreError as err:
            raise _fail(f"looking for dump {key[:12]}…", err) from None
        return True


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, or gone already
        directory.rmdir()


def _read_part(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes (fewer only at the end of the stream)."""
    chunks, have = [], 0
    while have < size:
        chunk = stream.read(min(1 << 20, size - have))
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


class _Multipart:
    """One object written part by part; a single ``put_object`` when it is one part."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []
        self.pending: bytes | None = None  # the first part, sent once a second one comes
        self.written = False

    def add(self, part: bytes) -> None:
        if self.pending is None and self.upload_id is None:
            self.pending = part
            return
        if self.upload_id is None:
            self.upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key)["UploadId"]
        if self.pending is not None:
            self._send(self.pending)
            self.pending = None
        self._send(part)

    def _send(self, part: bytes) -> None:
        number = len(self.parts) + 1
        answer = self.client.upload_part(Bucket=self.bucket, Key=self.key,
                                         UploadId=self.upload_id, PartNumber=number, Body=part)
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def finish(self) -> None:
        if self.upload_id is None:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self.pending or b"")
            self.pending = None
        else:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts})
            self.upload_id = None
        self.written = True

    def discard(self) -> None:
        """Abort an unfinished upload, delete the temporary object (errors ignored: a
        lifecycle rule on PREFIX/tmp/ removes what is left)."""
        try:
            if self.upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key,
                                                   UploadId=self.upload_id)
            if self.written:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception:  # noqa: BLE001 (cleanup must not hide the first error)
            pass
