"""The object store over an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, Garage, SeaweedFS, R2), through
obstore: Rust's object_store with its own HTTP client, so that a put, a get or a page of a listing costs the
event loop one await, and signing, retries and multipart uploads happen off the GIL.

Every call is bounded in time: a connection has 5 s to open and a request 30 s to finish; 5xx answers,
dropped connections and timeouts are retried with exponential backoff (4 retries, none started after 10 s).
So a store that is down answers StorageUnavailable within about 3 s, and a silent one within about 40 s
(one 30 s request, then retries until 10 s have passed), never a hang.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from imagehost.errors import StorageUnavailable
from imagehost.storage.objects import StoredObject

if TYPE_CHECKING:
    from obstore import GetResult, ObjectMeta

    from imagehost.settings import Settings

CONNECT_TIMEOUT = timedelta(seconds=5)
REQUEST_TIMEOUT = timedelta(seconds=30)
RETRY_CONFIG: dict[str, Any] = {
    "max_retries": 4,
    "retry_timeout": timedelta(seconds=10),
    # 0.2, 0.4, 0.8, 1.6 s (with jitter): at most about 3 s of waiting in all.
    "backoff": {"init_backoff": timedelta(milliseconds=200), "max_backoff": timedelta(seconds=2), "base": 2},
}
# obstore uploads in parts whatever is longer than one part (S3's smallest part is 5 MiB): images (5 MB at
# most) go in one PUT, backups and ZIPs in 8 MiB parts, four at a time.
MULTIPART_PART_BYTES = 8 * 1024 * 1024
MULTIPART_CONCURRENCY = 4
# A download handed to an HTTP answer is read in chunks of this much, whatever the object's size.
STREAM_CHUNK_BYTES = 256 * 1024
# A stream lives as long as its reader (a slow client), so it has no overall deadline of 30 s; it fails
# instead when the store stays silent for 30 s while a chunk is awaited.
STREAM_TIMEOUT = timedelta(minutes=30)
PROBE_MARKER = ".imagehost-probe"
PROBE_SECONDS = 5.0  # /ready's question must not wait for the full retries of a silent store
LISTING_BATCH = 1000  # S3's own page size


class S3ObjectStore:
    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout: timedelta = CONNECT_TIMEOUT,
        request_timeout: timedelta = REQUEST_TIMEOUT,
        retry_config: dict[str, Any] | None = None,
    ) -> None:
        """The keyword arguments exist for the tests (a silent store within seconds); the app passes settings."""
        self.bucket = settings.s3_bucket
        endpoint = settings.s3_endpoint_url.rstrip("/")
        parts = urlsplit(endpoint)
        # Named in every reason for /ready and app.log; never with credentials, even ones put in the URL.
        shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}" if endpoint else ""
        self.place = f"S3 bucket {self.bucket} at {shown or f'AWS S3 ({settings.s3_region})'}"
        config: dict[str, Any] = {"region": settings.s3_region}
        if endpoint:
            # MinIO, Garage, Ceph, moto and most self-hosted stores name the bucket in the path.
            config["endpoint"] = endpoint
            config["virtual_hosted_style_request"] = False
        else:
            config["virtual_hosted_style_request"] = True  # AWS' own addressing for buckets made since 2020
        if settings.s3_access_key_id:
            config["access_key_id"] = settings.s3_access_key_id
            config["secret_access_key"] = settings.s3_secret_access_key
        client: dict[str, Any] = {"connect_timeout": connect_timeout, "allow_http": endpoint.startswith("http://")}
        retries = retry_config if retry_config is not None else RETRY_CONFIG
        prefix = settings.s3_prefix.strip("/") or None
        self._store = S3Store(
            self.bucket,
            prefix=prefix,
            config=config,
            client_options={**client, "timeout": request_timeout},
            retry_config=retries,
        )
        stream_timeout = max(STREAM_TIMEOUT, request_timeout)
        self._stream_store = S3Store(
            self.bucket,
            prefix=prefix,
            config=config,
            client_options={**client, "timeout": stream_timeout, "read_timeout": request_timeout},
            retry_config=retries,
        )

    async def put(self, key: str, content: bytes | Path, content_type: str) -> None:
        """`content`: bytes, or a file's path (read part by part, never whole into memory)."""
        try:
            await obstore.put_async(
                self._store,
                key,
                content,
                attributes={"Content-Type": content_type},
                chunk_size=MULTIPART_PART_BYTES,
                max_concurrency=MULTIPART_CONCURRENCY,
            )
        except Exception as exc:  # a PUT's 404 (FileNotFoundError) is the bucket's
            raise self._unavailable(exc) from exc

    async def get(self, key: str) -> bytes | None:
        found = await self._get(self._store, key)
        if found is None:
            return None
        try:
            return (await found.bytes_async()).to_bytes()
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def stream(self, key: str) -> tuple[StoredObject, AsyncIterator[bytes]] | None:
        found = await self._get(self._stream_store, key)
        if found is None:
            return None
        return self._stored_object(found.meta), self._chunks(found)

    async def _chunks(self, found: GetResult) -> AsyncIterator[bytes]:
        try:
            async for chunk in found.stream(min_chunk_size=STREAM_CHUNK_BYTES):
                yield chunk
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def head(self, key: str) -> StoredObject | None:
        try:
            return self._stored_object(await obstore.head_async(self._store, key))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._unavailable(exc) from exc
        # A HEAD's 404 has no body, so a missing bucket looks like a missing object there. Missing objects
        # must be told from a wrong bucket (the consistency check would take every image for lost), so
        # ask once more with a GET, whose 404 names NoSuchKey or NoSuchBucket.
        found = await self._get(self._store, key)
        return None if found is None else self._stored_object(found.meta)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchKey":  # S3 says nothing for a missing key; some stores do
                return
            raise self._unavailable(exc) from exc
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def listing(self, prefix: str = "") -> AsyncIterator[StoredObject]:
        # object_store lists whole folders ("thumbs" means "thumbs/..."); a prefix that ends inside a name
        # lists its folder from just before it, and the keys come back in order, so stop past the last match.
        folder, _, partial = prefix.rpartition("/")
        options: dict[str, Any] = {"chunk_size": LISTING_BATCH}
        if partial and (before := prefix[:-1].rstrip("/")):
            options["offset"] = before
        try:
            async for batch in obstore.list(self._store, folder or None, **options):
                for meta in batch:
                    if meta["path"] == PROBE_MARKER:  # probe()'s, gone a moment later: no object of ours
                        continue
                    if meta["path"].startswith(prefix):
                        yield self._stored_object(meta)
                    elif partial and meta["path"] > prefix:
                        return
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def folders(self, prefix: str) -> list[str]:
        folder = prefix.strip("/")
        try:
            found = await obstore.list_with_delimiter_async(self._store, folder or None)
        except Exception as exc:
            raise self._unavailable(exc) from exc
        start = f"{folder}/" if folder else ""
        return sorted(path.removeprefix(start).strip("/") for path in found["common_prefixes"])

    async def copy(self, source: str, target: str) -> None:
        try:
            await obstore.copy_async(self._store, source, target)
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket":
                raise self._unavailable(exc) from exc
            raise
        except Exception as exc:
            raise self._unavailable(exc) from exc

    async def probe(self) -> str | None:
        try:
            async with asyncio.timeout(PROBE_SECONDS):
                await self.put(PROBE_MARKER, b"ok\n", "text/plain")
                await self.delete(PROBE_MARKER)
        except StorageUnavailable as exc:
            return exc.params["reason"]
        except TimeoutError:
            return f"{self.place}: no answer within {PROBE_SECONDS:.0f} s"
        return None

    async def _get(self, store: S3Store, key: str) -> GetResult | None:
        try:
            return await obstore.get_async(store, key)
        except FileNotFoundError as exc:
            if _error_code(exc) == "NoSuchBucket":
                raise self._unavailable(exc) from exc
            return None
        except Exception as exc:
            raise self._unavailable(exc) from exc

    @staticmethod
    def _stored_object(meta: ObjectMeta) -> StoredObject:
        return StoredObject(key=meta["path"], size=meta["size"], modified=meta["last_modified"])

    def _unavailable(self, exc: BaseException) -> StorageUnavailable:
        return StorageUnavailable(reason=f"{self.place}: {_why(exc)}")


_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_STATUS = re.compile(r"status code: (\d{3})")
_RETRIES = re.compile(r"after (\d+) retries")


def _error_code(exc: BaseException) -> str | None:
    """S3's own name for an error (NoSuchBucket, AccessDenied...), from the body obstore quotes."""
    found = _CODE.search(str(exc))
    return found.group(1) if found else None


def _why(exc: BaseException) -> str:
    """A short human reason from obstore's long error chain (its message quotes the request and the answer)."""
    message = str(exc)
    code = _error_code(exc)
    status = _STATUS.search(message)
    retries = _RETRIES.search(message)
    after = f" after {retries.group(1)} retries" if retries else ""
    if code == "NoSuchBucket" or (isinstance(exc, FileNotFoundError) and not code):
        return "no such bucket"
    refused = status.group(1) if status and status.group(1) in {"401", "403"} else None
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or refused:
        return f"access denied ({code or f'HTTP {refused or 403}'}): check the access key and secret"
    if "ConnectionRefused" in message:
        return f"connection refused{after}"
    if "kind: Timeout" in message or "TimedOut" in message:
        return f"no answer in time{after}"
    if status:
        return f"the store answered HTTP {status.group(1)}{f' {code}' if code else ''}{after}"
    if "kind: Connect" in message:
        return f"cannot connect{after}"
    first_line = message.splitlines()[0] if message else type(exc).__name__
    return first_line[:160]
