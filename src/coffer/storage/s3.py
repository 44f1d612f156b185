"""The S3 object store (boto3): AWS S3 or any S3 API, e.g. Swift's ``s3api`` or MinIO.

Requests are signed with SigV4 and use path-style addressing (``<endpoint>/<bucket>/<key>``),
which every S3 implementation accepts. Checksums are the classic ones (``Content-MD5`` on
each upload, verified by the server), not the newer ``x-amz-checksum-*`` headers that S3
look-alikes such as Swift's do not understand.

A put buffers at most one part (plus one of the caller's chunks): an object smaller than
one part is a single PUT; a larger one is a multipart upload of parts of ``part_size``
bytes (8 MiB by default, at least 5 MiB: S3's minimum) for the first 1000 parts, then
doubling every 1000 parts (S3 allows 10000), and it becomes visible only when the upload
completes. A failed put aborts its multipart upload, which discards the parts sent; the
upload of a put whose process was killed stays open (invisible to ``list``) until
``purge`` of a prefix of its key aborts it.
The bucket is created on the first put if it does not exist. (Swift's ``s3api``, as of
Swift 2.30, keeps the parts of a multipart object that a later put overwrites, in
``<bucket>+segments``: a leak of that backend, out of reach of any S3 call.)

One boto3 client per store, made on first use; boto3 clients may be shared by threads.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from coffer.errors import BadRequest, StorageError, StorageNotFound
from coffer.storage.base import (
    Source,
    StoreConfig,
    check_key,
    check_prefix,
    exists_by_size,
    growing_size,
    read_through,
)

log = logging.getLogger("coffer.storage.s3")

MiB = 1 << 20
PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
LARGEST_PART = 4096 * MiB
PARTS_PER_SIZE = 1000
MAX_PARTS = 10000
READ_CHUNK = 1 * MiB
#: error codes meaning "these credentials are wrong or not allowed here"
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
_MISSING = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3Store:
    """An S3 bucket as an object store. Constructing it does no I/O."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        part_size: int = PART_SIZE,
        timeout: float = 120.0,
        attempts: int = 3,
    ) -> None:
        _check_config(config)
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self._config = config
        self.bucket = config.container
        self._part_size = part_size
        self._timeout = timeout
        self._attempts = attempts
        self._client: Any = None
        self._bucket_ready = False

    def describe(self) -> str:
        return f"s3 bucket {self.bucket!r} at {self._config.location}"

    # ---------------------------------------------------------------- put
    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        check_key(key)
        source = Source(chunks)
        with source.own_error_first():
            with self._errors("store", key):
                self._ensure_bucket()
            first, ended = _fill(source, self._part_limit(0))
            if ended:
                with self._errors("store", key):
                    self._s3().put_object(
                        Bucket=self.bucket, Key=key, Body=first, ContentMD5=_md5(first)
                    )
            else:
                self._put_multipart(key, first, source)
        return source.size

    def _put_multipart(self, key: str, first: bytearray, source: Iterator[bytes]) -> None:
        s3 = self._s3()
        with self._errors("store", key):
            upload = s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts: list[dict[str, Any]] = []
        part, ended = first, False
        try:
            while part:
                number = len(parts) + 1
                if number > MAX_PARTS:
                    raise StorageError(
                        f"{self.describe()}: cannot store {key!r}: more than {MAX_PARTS} parts"
                    )
                with self._errors("store", key):
                    reply = s3.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload,
                        PartNumber=number,
                        Body=part,
                        ContentMD5=_md5(part),
                    )
                parts.append({"ETag": reply["ETag"], "PartNumber": number})
                part.clear()  # free the sent part (the caller holds ``first``) before the next
                if not ended:
                    part, ended = _fill(source, self._part_limit(number))
            with self._errors("store", key):
                s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            self._abort(key, upload)
            raise

    def _abort(self, key: str, upload: str) -> None:
        """Best effort: an upload that cannot be aborted is logged, not raised."""
        try:
            with self._errors("abort the upload of", key):
                self._s3().abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
        except StorageError as exc:
            log.warning("%s: multipart upload %s left behind: %s", self.describe(), upload, exc)

    def _part_limit(self, index: int) -> int:
        return growing_size(
            index, first=self._part_size, double_every=PARTS_PER_SIZE, largest=LARGEST_PART
        )

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        s3 = self._s3()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise
            extra = {}
            if self._config.region != "us-east-1":
                extra["CreateBucketConfiguration"] = {"LocationConstraint": self._config.region}
            try:
                s3.create_bucket(Bucket=self.bucket, **extra)
            except ClientError as again:
                if _code(again) != "BucketAlreadyOwnedByYou":
                    raise
        self._bucket_ready = True

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Iterator[bytes]:
        check_key(key)
        with self._errors("read", key):
            body = self._s3().get_object(Bucket=self.bucket, Key=key)["Body"]
        return read_through(body.iter_chunks(READ_CHUNK), self._errors("read", key), body.close)

    def exists(self, key: str) -> bool:
        return exists_by_size(self.size, key)

    def size(self, key: str) -> int:
        check_key(key)
        with self._errors("look up", key):
            head = self._s3().head_object(Bucket=self.bucket, Key=key)
        return int(head["ContentLength"])

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            with self._errors("list", prefix or "(all keys)"):
                pages = self._s3().get_paginator("list_objects_v2")
                for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                    keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except StorageNotFound:
            return []  # no bucket yet: nothing stored
        return sorted(keys)

    def delete(self, key: str) -> None:
        check_key(key)
        with contextlib.suppress(StorageNotFound), self._errors("delete", key):
            self._s3().delete_object(Bucket=self.bucket, Key=key)

    def purge(self, prefix: str) -> int:
        """Aborts every multipart upload of a key under ``prefix`` (which discards its
        parts), then deletes the objects under ``prefix``, one request each. Returns
        uploads aborted plus objects deleted."""
        check_prefix(prefix)
        s3 = self._s3()
        removed = 0
        try:
            with self._errors("purge", prefix):
                pages = s3.get_paginator("list_multipart_uploads")
                for page in pages.paginate(Bucket=self.bucket, Prefix=prefix):
                    for upload in page.get("Uploads", []):
                        removed += self._abort_left(upload["Key"], upload["UploadId"], prefix)
        except StorageNotFound:
            return 0  # no bucket: nothing stored
        for key in self.list(prefix):
            with contextlib.suppress(StorageNotFound), self._errors("purge", key):
                s3.delete_object(Bucket=self.bucket, Key=key)
                removed += 1
        return removed

    def _abort_left(self, key: str, upload: str, prefix: str) -> int:
        """Abort an upload a listing found under ``prefix``: 1, or 0 if it ended meanwhile."""
        if not key.startswith(prefix):  # a listing ignoring Prefix must not widen the purge
            return 0
        try:
            self._s3().abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
        except ClientError as exc:
            if _code(exc) in _MISSING or _code(exc) == "NoSuchUpload":
                return 0
            raise
        return 1

    # ---------------------------------------------------------------- plumbing
    def _s3(self) -> Any:
        if self._client is None:
            session = boto3.session.Session()
            self._client = session.client(
                "s3",
                endpoint_url=self._config.location,
                aws_access_key_id=self._config.user,
                aws_secret_access_key=self._config.key,
                region_name=self._config.region,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": self._attempts, "mode": "standard"},
                    connect_timeout=min(self._timeout, 10.0),
                    read_timeout=self._timeout,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                ),
            )
        return self._client

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn boto3 failures into ``StorageError`` (missing object: ``StorageNotFound``)."""
        where = f"{self.describe()}: cannot {action} {key!r}"
        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in _MISSING:
                raise StorageNotFound(f"{self.describe()} has no object {key!r}") from exc
            if code in _REFUSED:
                raise StorageError(
                    f"{where}: S3 refused access key {self._config.user!r} ({code}); "
                    "check the store's access key and secret"
                ) from exc
            message = exc.response.get("Error", {}).get("Message", "")
            raise StorageError(f"{where}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{where}: {type(exc).__name__}: {exc}") from exc


def _check_config(config: StoreConfig) -> None:
    if config.kind != "s3":
        raise BadRequest(f"an S3Store needs an 's3' store config, not {config.kind!r}")
    if not config.location.startswith(("http://", "https://")):
        raise BadRequest(f"s3 store location {config.location!r} is not an http(s) endpoint URL")
    if not config.user or not config.key:
        raise BadRequest("s3 store config needs both an access key (user) and a secret (key)")
    if not _BUCKET.fullmatch(config.container):
        raise BadRequest(
            f"s3 bucket name {config.container!r} is not valid: 3-63 characters, lowercase "
            "letters, digits, '.' and '-', starting and ending with a letter or digit"
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _md5(data: bytes | bytearray) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _fill(source: Iterator[bytes], limit: int) -> tuple[bytearray, bool]:
    """Buffer chunks until at least ``limit`` bytes or the end; (buffer, source ended)."""
    buffer = bytearray()
    while len(buffer) < limit:
        try:
            buffer += next(source)
        except StopIteration:
            return buffer, True
    return buffer, False
