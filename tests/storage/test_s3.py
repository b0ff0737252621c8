# ruff: noqa: F811 (the s3_server fixture of tests/s3server.py, imported to share it)
"""storage/s3.py against a real S3 API (moto's server mode with signatures checked, on loopback): round
trips, the prefix, pagination, multipart, and a store that is down, silent, refusing or misnamed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from imagehost.errors import StorageUnavailable
from imagehost.storage.s3 import MULTIPART_PART_BYTES, PROBE_SECONDS, S3ObjectStore
from tests.s3server import S3Server, s3_server  # noqa: F401 (fixture)

BINARY = bytes(range(256)) * 41 + b"\x00\r\n\xff"  # every byte value, NUL and CRLF among them
HANG_BOUND = 30  # seconds: a check that nothing hangs, not a speed check


def run(coroutine):
    return asyncio.run(coroutine)


def fresh_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


@pytest.fixture
def store(s3_server: S3Server, prefix: str) -> S3ObjectStore:
    return S3ObjectStore(s3_server.settings(s3_prefix=prefix))


async def read_stream(store: S3ObjectStore, key: str) -> tuple[object, list[bytes]] | None:
    found = await store.stream(key)
    if found is None:
        return None
    facts, chunks = found
    return facts, [chunk async for chunk in chunks]


async def listed(store: S3ObjectStore, prefix: str = "") -> list[str]:
    return [stored.key async for stored in store.listing(prefix)]


def test_put_get_head_stream_delete_round_trip_binary_content(store: S3ObjectStore):
    async def go():
        before = datetime.now(UTC) - timedelta(seconds=5)
        await store.put("AbCdEfGh.png", BINARY, "image/png")
        assert await store.get("AbCdEfGh.png") == BINARY
        facts = await store.head("AbCdEfGh.png")
        assert facts.key == "AbCdEfGh.png" and facts.size == len(BINARY)
        assert facts.modified.tzinfo is not None and facts.modified >= before
        streamed_facts, chunks = await read_stream(store, "AbCdEfGh.png")
        assert streamed_facts == facts and b"".join(chunks) == BINARY
        await store.delete("AbCdEfGh.png")
        assert await store.get("AbCdEfGh.png") is None
        assert await store.head("AbCdEfGh.png") is None
        assert await store.stream("AbCdEfGh.png") is None
        await store.delete("AbCdEfGh.png")  # gone already: no error

    run(go())


def test_put_replaces_what_was_there(store: S3ObjectStore):
    async def go():
        await store.put("thumbs/480/AbCd.jpg.webp", b"first version", "image/webp")
        await store.put("thumbs/480/AbCd.jpg.webp", b"second", "image/webp")
        assert await store.get("thumbs/480/AbCd.jpg.webp") == b"second"
        assert (await store.head("thumbs/480/AbCd.jpg.webp")).size == 6
        assert await listed(store) == ["thumbs/480/AbCd.jpg.webp"]

    run(go())


def test_a_missing_key_is_none_and_deleting_it_no_error(store: S3ObjectStore):
    async def go():
        assert await store.get("NoSuchImage.jpg") is None
        assert await store.head("NoSuchImage.jpg") is None
        assert await store.stream("NoSuchImage.jpg") is None
        await store.delete("NoSuchImage.jpg")
        assert await listed(store) == []

    run(go())


def test_keys_live_under_the_prefix_and_come_back_without_it(s3_server: S3Server, store: S3ObjectStore, prefix):
    async def go():
        await store.put("AbCd.jpg", b"image", "image/jpeg")
        await store.put("thumbs/480/AbCd.jpg.webp", b"thumb", "image/webp")
        assert await listed(store) == ["AbCd.jpg", "thumbs/480/AbCd.jpg.webp"]
        whole_bucket = S3ObjectStore(s3_server.settings())
        assert await listed(whole_bucket, prefix) == [
            f"{prefix}AbCd.jpg",
            f"{prefix}thumbs/480/AbCd.jpg.webp",
        ]
        assert await whole_bucket.get(f"{prefix}AbCd.jpg") == b"image"
        assert await whole_bucket.get("AbCd.jpg") is None

    run(go())
    # And as another client sees the bucket.
    answer = s3_server.boto3_client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    assert sorted(item["Key"] for item in answer["Contents"]) == [
        f"{prefix}AbCd.jpg",
        f"{prefix}thumbs/480/AbCd.jpg.webp",
    ]
    head = s3_server.boto3_client().head_object(Bucket=s3_server.bucket, Key=f"{prefix}AbCd.jpg")
    assert head["ContentType"] == "image/jpeg"


def test_listing_by_folder_and_by_a_prefix_inside_a_name(store: S3ObjectStore):
    keys = ["Aa.jpg", "Ab.jpg", "Abc.png", "B.gif", "thumbs/480/Ab.jpg.webp", "thumbs/480/Bc.jpg.webp", "thumbs4.txt"]

    async def go():
        await asyncio.gather(*(store.put(key, key.encode(), "application/octet-stream") for key in keys))
        assert await listed(store) == keys
        assert await listed(store, "Ab") == ["Ab.jpg", "Abc.png"]
        assert await listed(store, "Abc.png") == ["Abc.png"]
        assert await listed(store, "thumbs/") == ["thumbs/480/Ab.jpg.webp", "thumbs/480/Bc.jpg.webp"]
        assert await listed(store, "thumbs/480/B") == ["thumbs/480/Bc.jpg.webp"]
        assert await listed(store, "thumbs") == ["thumbs/480/Ab.jpg.webp", "thumbs/480/Bc.jpg.webp", "thumbs4.txt"]
        assert await listed(store, "C") == []
        facts = [stored async for stored in store.listing("B")]
        assert [(f.key, f.size) for f in facts] == [("B.gif", 5)] and facts[0].modified.tzinfo is not None

    run(go())


def test_listing_goes_across_pages(s3_server: S3Server, store: S3ObjectStore, prefix):
    # S3 answers a listing 1,000 keys at a time (moto too, by default).
    keys = [f"{n:05d}.jpg" for n in range(1_234)]

    async def go():
        limit = asyncio.Semaphore(16)

        async def put(key: str) -> None:
            async with limit:
                await store.put(key, b"x", "image/jpeg")

        await asyncio.gather(*(put(key) for key in keys))
        return await listed(store)

    assert run(go()) == keys
    pages = s3_server.requests(f"list-type=2&prefix={prefix.rstrip('/')}/")
    assert len(pages) == 2 and "continuation-token=" in pages[1]


def test_a_20_mb_object_goes_in_parts_and_comes_back_whole(s3_server: S3Server, store: S3ObjectStore, prefix):
    content = os.urandom(20 * 1024 * 1024)
    digest = hashlib.sha256(content).hexdigest()

    async def go():
        await store.put("backups/big.tar", content, "application/x-tar")
        assert hashlib.sha256(await store.get("backups/big.tar")).hexdigest() == digest
        facts, chunks = await read_stream(store, "backups/big.tar")
        assert facts.size == len(content)
        assert hashlib.sha256(b"".join(chunks)).hexdigest() == digest
        return [len(chunk) for chunk in chunks]

    sizes = run(go())
    assert len(sizes) > 20 and max(sizes) < 1024 * 1024  # chunks, never the whole object at once
    parts = s3_server.requests(f"PUT /{s3_server.bucket}/{prefix}backups/big.tar?partNumber=")
    assert len(parts) == -(-len(content) // MULTIPART_PART_BYTES) == 3


def test_an_image_below_the_part_size_goes_in_one_put(s3_server: S3Server, store: S3ObjectStore, prefix):
    run(store.put("Large.jpg", os.urandom(5_000_000), "image/jpeg"))
    puts = s3_server.requests(f"/{s3_server.bucket}/{prefix}Large.jpg")
    assert len(puts) == 1 and "uploadId" not in puts[0] and " 200 " in puts[0]


def test_a_slow_reader_of_a_stream_is_not_cut_off_by_the_request_timeout(s3_server: S3Server, prefix):
    settings = s3_server.settings(s3_prefix=prefix)
    store = S3ObjectStore(settings, request_timeout=timedelta(seconds=1))
    content = os.urandom(6 * 1024 * 1024)

    async def go():
        await store.put("slow.bin", content, "application/octet-stream")
        _facts, chunks = await store.stream("slow.bin")
        received = []
        async for chunk in chunks:
            received.append(chunk)
            await asyncio.sleep(0.1)  # a client on a slow line: ~2.4 s in all, past the 1 s timeout
        return b"".join(received)

    assert run(go()) == content
    assert len(s3_server.requests(f"GET /{s3_server.bucket}/{prefix}slow.bin")) == 1  # one GET, no resumes


def assert_unavailable(call, *words: str) -> str:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as raised:
        run(call())
    assert time.monotonic() - started < HANG_BOUND
    reason = raised.value.params["reason"]
    for word in words:
        assert word in reason, reason
    return reason


def every_call(store: S3ObjectStore):
    async def listing():
        return [stored async for stored in store.listing()]

    async def stream():
        found = await store.stream("AbCd.jpg")
        return found if found is None else [chunk async for chunk in found[1]]

    return {
        "put": lambda: store.put("New.jpg", b"new", "image/jpeg"),
        "get": lambda: store.get("AbCd.jpg"),
        "head": lambda: store.head("AbCd.jpg"),
        "head of a missing key": lambda: store.head("Missing.jpg"),
        "stream": stream,
        "delete": lambda: store.delete("AbCd.jpg"),
        "listing": listing,
    }


def test_a_store_that_is_down_answers_storage_unavailable_fast_and_works_again_when_back(
    s3_server: S3Server, store: S3ObjectStore
):
    run(store.put("AbCd.jpg", BINARY, "image/jpeg"))
    assert run(store.probe()) is None
    with s3_server.stopped():
        for name, call in every_call(store).items():
            started = time.monotonic()
            reason = assert_unavailable(call, "connection refused", s3_server.endpoint, s3_server.bucket)
            assert time.monotonic() - started < 10, name  # refused at once, then ~3 s of retries
            assert s3_server.secret_access_key not in reason
        reason = run(store.probe())
        assert reason and "connection refused" in reason and s3_server.endpoint in reason
    assert run(store.probe()) is None
    assert run(store.get("AbCd.jpg")) == BINARY  # nothing lost while it was down
    run(store.put("New.jpg", b"new", "image/jpeg"))
    assert run(store.get("New.jpg")) == b"new"


def test_a_silent_store_answers_storage_unavailable_within_its_timeouts(s3_server: S3Server, prefix):
    run(S3ObjectStore(s3_server.settings(s3_prefix=prefix)).put("AbCd.jpg", BINARY, "image/jpeg"))
    quick = S3ObjectStore(
        s3_server.settings(s3_prefix=prefix),
        connect_timeout=timedelta(seconds=1),
        request_timeout=timedelta(seconds=1),
        retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=2)},
    )
    default = S3ObjectStore(s3_server.settings(s3_prefix=prefix))
    with s3_server.frozen():
        for call in every_call(quick).values():
            assert_unavailable(call, "no answer in time", s3_server.endpoint)
        started = time.monotonic()
        reason = run(default.probe())  # the app's own timeouts: /ready still answers within seconds
        assert time.monotonic() - started < PROBE_SECONDS + 2
        assert reason and s3_server.endpoint in reason and "no answer" in reason
    # Answering again. (The requests that timed out reach moto now, the delete among them: a request
    # given up on may still be carried out, so an upload that answered 503 may leave an object behind.)
    run(default.put("After.jpg", BINARY, "image/jpeg"))
    assert run(default.get("After.jpg")) == BINARY


def test_a_wrong_secret_is_storage_unavailable_with_a_reason(s3_server: S3Server, prefix):
    run(S3ObjectStore(s3_server.settings(s3_prefix=prefix)).put("AbCd.jpg", BINARY, "image/jpeg"))
    wrong = S3ObjectStore(s3_server.settings(s3_prefix=prefix, s3_secret_access_key="not-the-secret"))
    for call in every_call(wrong).values():
        reason = assert_unavailable(call, "access denied", s3_server.bucket)
        assert "not-the-secret" not in reason
    assert "SignatureDoesNotMatch" in run(wrong.probe())
    unknown = S3ObjectStore(s3_server.settings(s3_access_key_id="AKIANOBODY"))
    assert "InvalidAccessKeyId" in run(unknown.probe())


def test_no_such_bucket_is_storage_unavailable_with_a_reason(s3_server: S3Server):
    missing = S3ObjectStore(s3_server.settings(s3_bucket="no-such-bucket"))
    for call in every_call(missing).values():
        assert_unavailable(call, "no such bucket", "no-such-bucket")
    assert "no such bucket" in run(missing.probe())


def test_5xx_answers_are_retried_with_backoff_then_storage_unavailable(s3_server: S3Server):
    # moto cannot be told to fail; a socket that answers 503 SlowDown counts the attempts.
    attempts = []
    answer = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: 60\r\n\r\n"
        b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>\r\n"
    )

    async def serve(reader, writer):
        attempts.append(time.monotonic())
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def go():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = S3ObjectStore(s3_server.settings(s3_endpoint_url=f"http://127.0.0.1:{port}"))
        started = time.monotonic()
        try:
            with pytest.raises(StorageUnavailable) as raised:
                await store.get("AbCd.jpg")
        finally:
            server.close()
        return raised.value.params["reason"], time.monotonic() - started

    reason, seconds = run(go())
    assert "HTTP 503 SlowDown after 4 retries" in reason
    assert len(attempts) == 5 and seconds < 10
    assert attempts[-1] - attempts[0] > 0.2  # backed off between them


def test_probe_leaves_no_marker_behind(s3_server: S3Server, store: S3ObjectStore, prefix):
    assert run(store.probe()) is None
    assert s3_server.boto3_client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)["KeyCount"] == 0
