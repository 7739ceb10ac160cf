"""CloudinaryStorage against a local fake of Cloudinary's Upload API, Admin API and CDN.

The real SDK does the talking; the fake checks signatures and the chunked-upload protocol the
way the service does and records what it received.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from media.cloudinary_storage import CloudinaryStorage, parse_cloudinary_url
from media.storage import ObjectMissing, Storage, StorageError
from tests.media.fake_cloudinary import FakeCloudinary

MiB = 1024 * 1024
FOLDER = "cohort-test"
SEGMENT = "processed/vid1/720p/seg_00003.ts"
PLAYLIST = "processed/vid1/720p/index.m3u8"


def pattern(size: int, seed: str = "cohort") -> bytes:
    """Deterministic, non-repeating-looking bytes (so misplaced chunks would show)."""
    block = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(2048))
    return (block * (size // len(block) + 1))[:size]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
async def fake() -> AsyncIterator[FakeCloudinary]:
    async with FakeCloudinary() as server:
        yield server


@pytest.fixture
def storage(fake: FakeCloudinary) -> CloudinaryStorage:
    return CloudinaryStorage(fake.cloudinary_url(), folder=FOLDER, chunk_size=6 * MiB)


@pytest.fixture
def fake_storage_small(fake: FakeCloudinary) -> CloudinaryStorage:
    """Chunked uploads from 6 MiB on, in 5 MiB chunks."""
    return CloudinaryStorage(
        fake.cloudinary_url(), folder=FOLDER, chunk_size=5 * MiB, large_threshold=6 * MiB
    )


def test_satisfies_the_storage_protocol(storage: CloudinaryStorage) -> None:
    backend: Storage = storage
    assert backend is storage


async def test_put_bytes_then_get_bytes(fake: FakeCloudinary, storage: CloudinaryStorage) -> None:
    data = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n"
    obj = await storage.put_bytes(PLAYLIST, data, "application/vnd.apple.mpegurl")

    assert (obj.key, obj.size) == (PLAYLIST, len(data))
    assert await storage.get_bytes(PLAYLIST) == data
    assert await storage.local_path(PLAYLIST) is None
    asset = fake.asset(f"{FOLDER}/{PLAYLIST}")
    assert asset is not None
    assert asset.data == data

    [upload] = fake.uploads()
    assert upload.path == "/v1_1/demo/raw/upload"
    assert "X-Unique-Upload-Id" not in upload.headers
    assert upload.params["public_id"] == f"{FOLDER}/{PLAYLIST}"
    assert upload.params["type"] == "authenticated"
    assert upload.params["api_key"] == fake.api_key
    assert {"timestamp", "signature"} <= upload.params.keys()
    assert upload.file_name == "index.m3u8"


async def test_put_bytes_overwrites_and_reads_back_the_new_version(
    fake: FakeCloudinary, storage: CloudinaryStorage
) -> None:
    first = await storage.put_bytes(PLAYLIST, b"#EXTM3U\n#one\n", "application/vnd.apple.mpegurl")
    second = await storage.put_bytes(PLAYLIST, b"#EXTM3U\n#two\n", "application/vnd.apple.mpegurl")

    assert first.url != second.url
    assert await storage.get_bytes(PLAYLIST) == b"#EXTM3U\n#two\n"
    deliveries = [r for r in fake.requests if r.method == "GET" and "/raw/authenticated/" in r.path]
    asset = fake.asset(f"{FOLDER}/{PLAYLIST}")
    assert asset is not None
    assert f"/v{asset.version}/" in deliveries[-1].path


async def test_put_file_below_threshold_is_one_upload(
    fake: FakeCloudinary, storage: CloudinaryStorage, tmp_path: Path
) -> None:
    data = pattern(12 * MiB)
    source = write(tmp_path / "seg.ts", data)

    obj = await storage.put_file(SEGMENT, source, "video/mp2t")

    assert obj.size == len(data)
    [upload] = fake.uploads()
    assert "X-Unique-Upload-Id" not in upload.headers
    assert "Content-Range" not in upload.headers
    assert upload.file_size == len(data)
    assert upload.file_name == "seg.ts"
    assert not fake.chunks
    asset = fake.asset(f"{FOLDER}/{SEGMENT}")
    assert asset is not None
    assert asset.data == data


async def test_put_file_above_threshold_uses_chunked_upload(
    fake: FakeCloudinary, storage: CloudinaryStorage, tmp_path: Path
) -> None:
    data = pattern(25 * MiB, seed="large")
    source = write(tmp_path / "source.mp4", data)

    obj = await storage.put_file("raw/vid1/source", source, "video/mp4")

    assert obj.size == len(data)
    [(upload_id, chunks)] = fake.chunks.items()
    assert len(chunks) >= 3
    assert all(chunk.size >= 5 * MiB for chunk in chunks[:-1])
    assert [chunk.first for chunk in chunks] == [
        sum(c.size for c in chunks[:i]) for i in range(len(chunks))
    ]
    assert chunks[-1].last + 1 == chunks[-1].total == len(data)
    uploads = fake.uploads()
    assert len(uploads) == len(chunks)
    assert {u.headers["X-Unique-Upload-Id"] for u in uploads} == {upload_id}
    assert [u.headers["Content-Range"] for u in uploads] == [
        f"bytes {c.first}-{c.last}/{c.total}" for c in chunks
    ]
    assert all(u.params["public_id"] == f"{FOLDER}/raw/vid1/source" for u in uploads)
    asset = fake.asset(f"{FOLDER}/raw/vid1/source")
    assert asset is not None
    assert asset.data == data
    assert await storage.get_bytes("raw/vid1/source") == data


async def test_large_put_bytes_is_chunked_too(
    fake: FakeCloudinary, fake_storage_small: CloudinaryStorage
) -> None:
    data = pattern(7 * MiB, seed="bytes")
    obj = await fake_storage_small.put_bytes("processed/vid1/poster.jpg", data, "image/jpeg")

    assert obj.size == len(data)
    [chunks] = fake.chunks.values()
    assert [c.size for c in chunks] == [5 * MiB, 2 * MiB]
    asset = fake.asset(f"{FOLDER}/processed/vid1/poster.jpg")
    assert asset is not None
    assert asset.data == data


async def test_signed_url_carries_version_and_signature(
    fake: FakeCloudinary, storage: CloudinaryStorage
) -> None:
    obj = await storage.put_bytes(SEGMENT, b"\x47" * 188, "video/mp2t")
    asset = fake.asset(f"{FOLDER}/{SEGMENT}")
    assert asset is not None

    assert obj.url is not None
    match = re.fullmatch(
        rf"http://{re.escape(fake.host)}/demo/raw/authenticated/s--([A-Za-z0-9_-]{{8}})--/"
        rf"v(\d+)/{FOLDER}/{SEGMENT}",
        obj.url,
    )
    assert match is not None, obj.url
    assert int(match[2]) == asset.version
    # The same URL the service itself reports for the upload.
    assert obj.url == fake.delivery_url(asset)

    async with aiohttp.ClientSession() as session:
        async with session.get(obj.url) as resp:
            assert resp.status == 200
            assert await resp.read() == b"\x47" * 188
        forged = obj.url.replace(f"s--{match[1]}--", "s--AAAAAAAA--")
        async with session.get(forged) as resp:
            assert resp.status == 401
        unsigned = obj.url.replace(f"s--{match[1]}--/", "")
        async with session.get(unsigned) as resp:
            assert resp.status == 401


async def test_exists(fake: FakeCloudinary, storage: CloudinaryStorage) -> None:
    assert not await storage.exists(SEGMENT)
    await storage.put_bytes(SEGMENT, b"segment", "video/mp2t")
    assert await storage.exists(SEGMENT)
    assert not await storage.exists("processed/vid1/720p/seg_00004.ts")

    lookups = [r for r in fake.requests if r.path.startswith("/v1_1/demo/resources/")]
    assert [r.method for r in lookups] == ["GET", "GET", "GET"]
    assert lookups[1].path == f"/v1_1/demo/resources/raw/authenticated/{FOLDER}/{SEGMENT}"
    assert lookups[1].headers["Authorization"].startswith("Basic ")


async def test_delete_prefix_removes_only_that_prefix(
    fake: FakeCloudinary, storage: CloudinaryStorage
) -> None:
    fake.delete_page_size = 2  # force "partial" answers and next_cursor rounds
    doomed = [
        "processed/vid1/720p/index.m3u8",
        "processed/vid1/720p/seg_00000.ts",
        "processed/vid1/720p/seg_00001.ts",
        "processed/vid1/master.m3u8",
        "processed/vid1/poster.jpg",
    ]
    kept = ["processed/vid2/720p/seg_00000.ts", "raw/vid1/source"]
    for key in doomed + kept:
        await storage.put_bytes(key, key.encode(), "application/octet-stream")
    other = CloudinaryStorage(fake.cloudinary_url(), folder="other-app")
    await other.put_bytes("processed/vid1/master.m3u8", b"#EXTM3U\n", "text/plain")

    assert await storage.delete_prefix("processed/vid1/") == len(doomed)

    for key in doomed:
        assert not await storage.exists(key)
    for key in kept:
        assert await storage.exists(key)
    assert await other.exists("processed/vid1/master.m3u8")
    deletes = [r for r in fake.requests if r.method == "DELETE"]
    assert len(deletes) == 3
    assert {r.path for r in deletes} == {"/v1_1/demo/resources/raw/authenticated"}
    assert all(r.params["prefix"] == f"{FOLDER}/processed/vid1/" for r in deletes)
    assert "next_cursor" not in deletes[0].params
    assert all(r.params["next_cursor"] for r in deletes[1:])

    assert await storage.delete_prefix("processed/vid1/") == 0


async def test_wrong_api_secret_is_a_storage_error(fake: FakeCloudinary, tmp_path: Path) -> None:
    wrong = CloudinaryStorage(fake.cloudinary_url(api_secret="not-the-secret"), folder=FOLDER)

    with pytest.raises(StorageError, match="Invalid Signature") as err:
        await wrong.put_bytes(SEGMENT, b"segment", "video/mp2t")
    assert not isinstance(err.value, ObjectMissing)
    with pytest.raises(StorageError, match="Invalid Signature"):
        await wrong.put_file(SEGMENT, write(tmp_path / "seg.ts", b"segment"), "video/mp2t")
    with pytest.raises(StorageError, match="api_secret mismatch"):
        await wrong.exists(SEGMENT)
    with pytest.raises(StorageError, match="api_secret mismatch"):
        await wrong.delete_prefix("processed/")
    assert fake.assets == {}
    assert {r.status for r in fake.requests} == {401}


async def test_unknown_api_key_is_a_storage_error(fake: FakeCloudinary) -> None:
    wrong = CloudinaryStorage(fake.cloudinary_url(api_key="000000000000000"))
    with pytest.raises(StorageError, match="Unknown API key"):
        await wrong.put_bytes(SEGMENT, b"segment", "video/mp2t")


async def test_unreachable_service_is_a_storage_error() -> None:
    # A bound socket that never listens: connections to it are refused, and no other test
    # (xdist workers included) can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{closed.getsockname()[1]}"
        dead = CloudinaryStorage(
            f"cloudinary://k:s@demo?upload_prefix=http://{host}&cname={host}&secure=false",
            timeout=5,
        )
        with pytest.raises(StorageError):
            await dead.put_bytes(SEGMENT, b"segment", "video/mp2t")
        with pytest.raises(StorageError):
            await dead.get_bytes(SEGMENT)
        with pytest.raises(StorageError):
            await dead.exists(SEGMENT)


async def test_get_missing_key_is_object_missing(storage: CloudinaryStorage) -> None:
    with pytest.raises(ObjectMissing):
        await storage.get_bytes("processed/nope/720p/index.m3u8")


async def test_wrong_secret_delivery_is_not_object_missing(fake: FakeCloudinary) -> None:
    right = CloudinaryStorage(fake.cloudinary_url(), folder=FOLDER)
    await right.put_bytes(PLAYLIST, b"#EXTM3U\n", "text/plain")
    wrong = CloudinaryStorage(fake.cloudinary_url(api_secret="not-the-secret"), folder=FOLDER)
    with pytest.raises(StorageError, match="401") as err:
        await wrong.get_bytes(PLAYLIST)
    assert not isinstance(err.value, ObjectMissing)


async def test_shared_session_is_used_and_left_open(fake: FakeCloudinary) -> None:
    async with aiohttp.ClientSession() as session:
        shared = CloudinaryStorage(fake.cloudinary_url(), folder=FOLDER, session=session)
        await shared.put_bytes(PLAYLIST, b"#EXTM3U\n", "text/plain")
        assert await shared.get_bytes(PLAYLIST) == b"#EXTM3U\n"
        assert await shared.get_bytes(PLAYLIST) == b"#EXTM3U\n"
        assert not session.closed


@pytest.mark.parametrize("key", ["../x", "/abs", "", "processed/../x", "processed//x"])
async def test_invalid_keys_are_refused(
    fake: FakeCloudinary, storage: CloudinaryStorage, tmp_path: Path, key: str
) -> None:
    source = write(tmp_path / "f", b"x")
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put_bytes(key, b"x", "text/plain")
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put_file(key, source, "text/plain")
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.get_bytes(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.exists(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.local_path(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.delete_prefix(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.url(key)
    assert fake.requests == []


def test_config_comes_from_the_url_not_the_global_config() -> None:
    options = parse_cloudinary_url(
        "cloudinary://key:s%40cret@My-Cloud/cdn.example.com"
        "?secure=false&cname=media.example.com&signature_version=1&timeout=7.5"
    )
    assert options == {
        "cloud_name": "my-cloud",
        "api_key": "key",
        "api_secret": "s@cret",
        "private_cdn": True,
        "secure_distribution": "cdn.example.com",
        "secure": False,
        "cname": "media.example.com",
        "signature_version": 1,
        "timeout": 7.5,
    }
    a = CloudinaryStorage("cloudinary://k1:s1@cloud-one")
    b = CloudinaryStorage("cloudinary://k2:s2@cloud-two", folder="/app/")
    assert a.url(SEGMENT).startswith("https://res.cloudinary.com/cloud-one/raw/authenticated/s--")
    assert b.url(SEGMENT).startswith("https://res.cloudinary.com/cloud-two/raw/authenticated/s--")
    assert b.url(SEGMENT).endswith(f"/app/{SEGMENT}")
    assert a.url(SEGMENT, 1700000000).endswith(f"/v1700000000/{SEGMENT}")


@pytest.mark.parametrize(
    "url",
    ["https://k:s@cloud", "cloudinary://cloud", "cloudinary://k@cloud", "cloudinary://k:s@"],
)
def test_malformed_cloudinary_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Cloudinary URL"):
        CloudinaryStorage(url)


def test_chunks_below_five_megabytes_are_refused() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        CloudinaryStorage("cloudinary://k:s@cloud", chunk_size=4 * MiB)


async def test_global_sdk_config_is_neither_used_nor_changed(
    fake: FakeCloudinary, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cloudinary

    monkeypatch.setattr(cloudinary, "_config", cloudinary.Config())
    cloudinary.config(
        cloud_name="someone-else",
        api_key="999",
        api_secret="wrong",
        upload_prefix="http://127.0.0.1:9",
        upload_preset="not-ours",
        secure=True,
        private_cdn=True,
        cname="cdn.example.com",
        signature_version=1,
    )
    before = dict(vars(cloudinary.config()))
    storage = CloudinaryStorage(fake.cloudinary_url(), folder=FOLDER, chunk_size=5 * MiB)

    obj = await storage.put_bytes(PLAYLIST, b"#EXTM3U\n", "text/plain")
    assert obj.url is not None
    assert obj.url.startswith(f"{fake.base_url}/demo/raw/authenticated/s--")
    assert await storage.get_bytes(PLAYLIST) == b"#EXTM3U\n"
    assert await storage.exists(PLAYLIST)
    assert await storage.delete_prefix("processed/") == 1
    assert "upload_preset" not in fake.uploads()[0].params
    assert dict(vars(cloudinary.config())) == before


async def test_concurrent_puts(fake: FakeCloudinary, storage: CloudinaryStorage) -> None:
    keys = [f"processed/vid1/720p/seg_{i:05d}.ts" for i in range(12)]
    objs = await asyncio.gather(
        *(storage.put_bytes(k, k.encode() * 100, "video/mp2t") for k in keys)
    )
    assert [o.key for o in objs] == keys
    datas = await asyncio.gather(*(storage.get_bytes(k) for k in keys))
    assert datas == [k.encode() * 100 for k in keys]
    assert len({o.url for o in objs}) == len(keys)


async def test_put_file_with_url_like_relative_path(
    fake: FakeCloudinary,
    storage: CloudinaryStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s3:segment.ts", b"local bytes")
    obj = await storage.put_file(SEGMENT, Path("s3:segment.ts"), "video/mp2t")
    assert obj.size == len(b"local bytes")
    assert await storage.get_bytes(SEGMENT) == b"local bytes"
