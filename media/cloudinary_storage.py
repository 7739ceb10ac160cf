"""``Storage`` on Cloudinary, through the official ``cloudinary`` SDK.

Every object is a ``raw`` resource of delivery type ``authenticated`` (not publicly listable or
fetchable without a signed URL) whose public ID is the storage key, under an optional folder
prefix. The SDK is blocking (urllib3), so each call runs in a worker thread.

Configuration is per instance: the SDK's functions all accept their settings (cloud name, keys,
API host, delivery host) as keyword options, so this class parses its own ``cloudinary://`` URL
and passes every setting explicitly on each call. It neither reads nor changes the SDK's global
``cloudinary.config()`` for the settings it passes, so several instances with different accounts
can live in one process.

URL form: ``cloudinary://<api_key>:<api_secret>@<cloud_name>[/<secure_distribution>][?opts]``,
as the SDK's ``CLOUDINARY_URL``. Query options are SDK config options; ``true``/``false`` become
booleans. Useful ones: ``upload_prefix=http://127.0.0.1:PORT`` (API host), ``secure=false`` with
``cname=HOST[:PORT]`` (plain-HTTP delivery host, for a local fake), ``private_cdn=true``.

Known limits of the service this adapter does not hide:
- ``content_type`` is not stored: Cloudinary serves ``raw`` files with a type derived from the
  public ID's extension (``.m3u8``, ``.ts``, ``.mp4``...).
- ``exists`` uses the Admin API, which is rate limited per hour; do not call it per segment.
- ``delete_prefix`` is a string prefix (as the protocol says), so ``processed/v1`` also matches
  ``processed/v10/...``; pass ``processed/v1/`` to mean the folder.
- The SDK still reads a few settings only from its global config: a global ``oauth_token``
  overrides the key/secret for ``upload_large`` chunks; ``api_proxy`` is read at import.
- ``get_bytes`` goes through the CDN. After overwriting a key it asks for the version this
  instance last uploaded, so its own writes are read back fresh; another process's overwrite of
  a key may be served stale from the CDN until the cache expires.
"""

from __future__ import annotations

import asyncio
import io
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import cloudinary.api
import cloudinary.exceptions
import cloudinary.uploader
import cloudinary.utils

from media.storage import ObjectMissing, StorageError, StoredObject, check_key

MiB: Final = 1024 * 1024
# Files above this go through the chunked ``upload_large`` protocol.
LARGE_UPLOAD_THRESHOLD: Final = 20 * MiB
# The service rejects chunks under 5 MB (except the last); the SDK's own default is 20 MB.
MIN_CHUNK_SIZE: Final = 5 * MiB
DEFAULT_CHUNK_SIZE: Final = 20 * MiB
RESOURCE_TYPE: Final = "raw"
DELIVERY_TYPE: Final = "authenticated"
DEFAULT_API_HOST: Final = "https://api.cloudinary.com"
# How many "partial" rounds of delete-by-prefix (1,000 objects each on the real service).
MAX_DELETE_ROUNDS: Final = 10_000
# Versions remembered from this instance's own uploads, so get_bytes reads its writes fresh.
VERSION_MEMORY: Final = 4096

_BOOL_WORDS: Final = {"true": True, "false": False}
_INT_OPTIONS: Final = frozenset({"signature_version"})
_FLOAT_OPTIONS: Final = frozenset({"timeout"})


def parse_cloudinary_url(url: str) -> dict[str, Any]:
    """The SDK config options a ``cloudinary://key:secret@cloud[?opts]`` URL describes.

    Mirrors ``cloudinary.Config`` (hostname is the cloud name, a path means a private CDN with
    that secure distribution, query pairs are options), but also turns ``true``/``false`` and
    numeric options into values: the SDK keeps them as strings, so ``secure=false`` would be
    truthy and ``signature_version=2`` would break its comparisons.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "cloudinary":
        raise ValueError("Cloudinary URL must start with cloudinary://")
    if not parts.hostname or not parts.username or not parts.password:
        raise ValueError("Cloudinary URL must look like cloudinary://api_key:api_secret@cloud_name")
    options: dict[str, Any] = {
        "cloud_name": parts.hostname,
        "api_key": unquote(parts.username),
        "api_secret": unquote(parts.password),
    }
    if parts.path not in ("", "/"):
        options["private_cdn"] = True
        options["secure_distribution"] = parts.path[1:]
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        value: Any = raw
        if raw.lower() in _BOOL_WORDS:
            value = _BOOL_WORDS[raw.lower()]
        elif name in _INT_OPTIONS:
            value = int(raw)
        elif name in _FLOAT_OPTIONS:
            value = float(raw)
        options[name] = value
    return options


class CloudinaryStorage:
    """A ``Storage`` whose objects are authenticated ``raw`` resources on Cloudinary.

    ``folder`` is prepended to every key (``<folder>/<key>`` is the public ID). ``session``, if
    given, is used for downloads and stays owned by the caller; otherwise each ``get_bytes``
    opens and closes its own.
    """

    def __init__(
        self,
        cloudinary_url: str,
        folder: str = "",
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        large_threshold: int = LARGE_UPLOAD_THRESHOLD,
        timeout: float = 120.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if chunk_size < MIN_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be at least {MIN_CHUNK_SIZE} bytes")
        folder = folder.strip("/")
        self.folder = check_key(folder) if folder else ""
        self._chunk_size = chunk_size
        self._large_threshold = large_threshold
        self._session = session
        self._versions: OrderedDict[str, int] = OrderedDict()

        config = parse_cloudinary_url(cloudinary_url)
        self.cloud_name: str = config["cloud_name"]
        timeout = float(config.get("timeout", timeout))
        self._download_timeout = aiohttp.ClientTimeout(total=timeout)
        signing = {
            "signature_algorithm": config.get("signature_algorithm", "sha1"),
            "signature_version": config.get("signature_version", 2),
        }
        # Options for Upload API and Admin API calls. Each one is given explicitly so the
        # SDK never falls back to its global config for it.
        self._api_options: dict[str, Any] = {
            "cloud_name": self.cloud_name,
            "api_key": config["api_key"],
            "api_secret": config["api_secret"],
            "upload_prefix": config.get("upload_prefix") or DEFAULT_API_HOST,
            "oauth_token": None,
            "timeout": timeout,
            **signing,
        }
        self._upload_options: dict[str, Any] = {
            **self._api_options,
            "resource_type": RESOURCE_TYPE,
            "type": DELIVERY_TYPE,
            "overwrite": True,
            "upload_preset": None,
        }
        # Options for building signed delivery URLs (``cloudinary.utils.cloudinary_url``).
        self._url_options: dict[str, Any] = {
            "cloud_name": self.cloud_name,
            "api_secret": config["api_secret"],
            "resource_type": RESOURCE_TYPE,
            "type": DELIVERY_TYPE,
            "sign_url": True,
            "secure": config.get("secure", True),
            "private_cdn": config.get("private_cdn", False),
            "secure_distribution": config.get("secure_distribution"),
            "cname": config.get("cname"),
            "cdn_subdomain": config.get("cdn_subdomain", False),
            "secure_cdn_subdomain": config.get("secure_cdn_subdomain"),
            "long_url_signature": config.get("long_url_signature", False),
            "signature_algorithm": signing["signature_algorithm"],
            "force_version": True,
            "use_root_path": False,
            "shorten": False,
            "auth_token": False,
        }

    # Keys and URLs --------------------------------------------------------------------------

    def public_id(self, key: str) -> str:
        """The Cloudinary public ID of ``key``."""
        check_key(key)
        return f"{self.folder}/{key}" if self.folder else key

    def url(self, key: str, version: int | str | None = None) -> str:
        """A signed delivery URL for ``key`` (``…/raw/authenticated/s--SIG--/v<version>/<id>``).

        Without a version, the one this instance last uploaded, else the SDK's ``v1``.
        """
        public_id = self.public_id(key)
        if version is None:
            version = self._versions.get(public_id)
        url, _ = cloudinary.utils.cloudinary_url(public_id, version=version, **self._url_options)
        return str(url)

    def _remember(self, public_id: str, version: int) -> None:
        self._versions[public_id] = version
        self._versions.move_to_end(public_id)
        while len(self._versions) > VERSION_MEMORY:
            self._versions.popitem(last=False)

    def _stored(self, key: str, result: Mapping[str, Any]) -> StoredObject:
        public_id = self.public_id(key)
        version, size = result.get("version"), result.get("bytes")
        if result.get("public_id") != public_id or version is None or not isinstance(size, int):
            raise StorageError(f"unexpected Cloudinary upload response for {key!r}: {result!r}")
        version = int(version)
        self._remember(public_id, version)
        return StoredObject(key, size, self.url(key, version))

    # SDK calls ------------------------------------------------------------------------------

    async def _call(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call in a thread, translating its errors."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except cloudinary.exceptions.NotFound as exc:
            raise ObjectMissing(str(exc)) from exc
        except (cloudinary.exceptions.Error, OSError, ValueError) as exc:
            raise StorageError(f"Cloudinary: {exc}") from exc
        except Exception as exc:
            # The Admin API client raises a bare Exception for statuses it has no class for
            # (502, 504...) and for missing credentials.
            if type(exc) is Exception:
                raise StorageError(f"Cloudinary: {exc}") from exc
            raise

    async def _upload(self, key: str, file: Any, size: int, filename: str) -> StoredObject:
        options = {**self._upload_options, "public_id": self.public_id(key), "filename": filename}
        if size > self._large_threshold:
            result = await self._call(
                cloudinary.uploader.upload_large, file, chunk_size=self._chunk_size, **options
            )
        else:
            result = await self._call(cloudinary.uploader.upload, file, **options)
        if not isinstance(result, Mapping):
            raise StorageError(f"unexpected Cloudinary upload response for {key!r}: {result!r}")
        return self._stored(key, result)

    # Storage protocol -----------------------------------------------------------------------

    async def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        self.public_id(key)
        size = (await asyncio.to_thread(source.stat)).st_size
        # A Path, not a str: the SDK takes strings starting "s3:", "data:", "https:"... as remote
        # URLs to fetch. ``upload`` reads the file whole, ``upload_large`` a chunk at a time.
        return await self._upload(key, Path(source), size, source.name)

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        name = PurePosixPath(self.public_id(key)).name
        if len(data) > self._large_threshold:
            return await self._upload(key, io.BytesIO(data), len(data), name)
        # A (name, bytes) pair: the SDK sends it as is, even when empty.
        return await self._upload(key, (name, data), len(data), name)

    async def get_bytes(self, key: str) -> bytes:
        url = self.url(key)
        if self._session is not None:
            return await self._download(self._session, key, url)
        async with aiohttp.ClientSession(timeout=self._download_timeout) as session:
            return await self._download(session, key, url)

    async def _download(self, session: aiohttp.ClientSession, key: str, url: str) -> bytes:
        try:
            async with session.get(url, timeout=self._download_timeout) as resp:
                if resp.status == 404:
                    raise ObjectMissing(key)
                if resp.status != 200:
                    why = resp.headers.get("X-Cld-Error") or resp.reason or ""
                    raise StorageError(f"Cloudinary delivery of {key!r}: HTTP {resp.status} {why}")
                return await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(f"Cloudinary delivery of {key!r}: {exc!r}") from exc

    async def fetch_to(self, key: str, target: Path) -> None:
        url = self.url(key)
        if self._session is not None:
            await self._stream(self._session, key, url, target)
            return
        async with aiohttp.ClientSession(timeout=self._download_timeout) as session:
            await self._stream(session, key, url, target)

    async def _stream(
        self, session: aiohttp.ClientSession, key: str, url: str, target: Path
    ) -> None:
        try:
            async with session.get(url, timeout=self._download_timeout) as resp:
                if resp.status == 404:
                    raise ObjectMissing(key)
                if resp.status != 200:
                    why = resp.headers.get("X-Cld-Error") or resp.reason or ""
                    raise StorageError(f"Cloudinary delivery of {key!r}: HTTP {resp.status} {why}")
                handle = await asyncio.to_thread(target.open, "wb")
                try:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        await asyncio.to_thread(handle.write, chunk)
                finally:
                    await asyncio.to_thread(handle.close)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(f"Cloudinary delivery of {key!r}: {exc!r}") from exc

    async def local_path(self, key: str) -> Path | None:
        self.public_id(key)
        return None

    async def exists(self, key: str) -> bool:
        public_id = self.public_id(key)
        try:
            await self._call(
                cloudinary.api.resource,
                public_id,
                resource_type=RESOURCE_TYPE,
                type=DELIVERY_TYPE,
                **self._api_options,
            )
        except ObjectMissing:
            return False
        return True

    async def delete_prefix(self, prefix: str) -> int:
        check_key(prefix.rstrip("/"))
        full_prefix = f"{self.folder}/{prefix}" if self.folder else prefix
        count = 0
        cursor: str | None = None
        for _ in range(MAX_DELETE_ROUNDS):
            options = dict(self._api_options)
            if cursor:
                options["next_cursor"] = cursor
            result = await self._call(
                cloudinary.api.delete_resources_by_prefix,
                full_prefix,
                resource_type=RESOURCE_TYPE,
                type=DELIVERY_TYPE,
                **options,
            )
            deleted = result.get("deleted") or {}
            removed = [public_id for public_id, state in deleted.items() if state == "deleted"]
            count += len(removed)
            for public_id in removed:
                self._versions.pop(public_id, None)
            cursor = result.get("next_cursor") or None
            if not result.get("partial") and not cursor:
                return count
            if not removed and not cursor:
                raise StorageError(f"Cloudinary delete of {prefix!r} is partial but not advancing")
        raise StorageError(f"Cloudinary delete of {prefix!r} still partial after many rounds")
