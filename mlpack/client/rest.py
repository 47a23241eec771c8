"""REST clients for any Open Inference Protocol (V2) server: ``Client`` and ``AsyncClient``.

Both keep connections alive (HTTP/1.1; ``AsyncClient`` on a lean httptools pool) and speak
JSON, or the binary tensor extension with ``binary=True``. ``infer`` takes and returns
``mlpack.types``; ``infer_json`` takes and returns plain dicts, which is what batch jobs
use to avoid model round trips.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from ..errors import MLPackError
from ..types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
)
from ._http11 import ConnectionPool
from .binary import HEADER_LENGTH, decode_binary_response, encode_binary_request
from .errors import ServerError, Timeout, TransportError, parse_retry_after

Request = InferenceRequest | Mapping[str, Any]
DEFAULT_TIMEOUT = 60.0


def normalise_url(url: str, use_ssl: bool = False) -> str:
    """``host:port`` → ``http://host:port`` (``https`` with ``use_ssl``); no trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = ("https://" if use_ssl else "http://") + url
    return url


@contextlib.contextmanager
def _map_httpx_errors(url: str) -> Iterator[None]:
    """The one place httpx exceptions become mlpack client errors."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise Timeout(f"{url}: no answer in time ({type(error).__name__})") from None
    except httpx.TransportError as error:
        raise TransportError(f"{url}: {type(error).__name__}: {error}") from None


class _BaseClient:
    def __init__(
        self,
        url: str,
        *,
        binary: bool = False,
        headers: Mapping[str, str] | None = None,
        use_ssl: bool = False,
        token: str | None = None,
    ) -> None:
        self.url = normalise_url(url, use_ssl)
        self.binary = binary
        self.headers = dict(headers or {})
        if token:  # an API key (server auth): sent as a bearer token with every call
            self.headers["Authorization"] = f"Bearer {token}"

    def _infer_path(self, model_name: str, model_version: str | None) -> str:
        path = f"{self.url}/v2/models/{quote(model_name, safe='')}"
        if model_version:
            path += f"/versions/{quote(model_version, safe='')}"
        return path + "/infer"

    def _model_path(self, model_name: str, model_version: str | None) -> str:
        return self._infer_path(model_name, model_version)[: -len("/infer")]

    def _encode(
        self, request: Request, headers: Mapping[str, str] | None
    ) -> tuple[bytes, dict[str, str]]:
        payload = request.dict() if isinstance(request, InferenceRequest) else dict(request)
        merged = {**self.headers, **(headers or {})}
        if self.binary:
            body, header_length = encode_binary_request(payload)
            merged[HEADER_LENGTH] = str(header_length)
            merged["Content-Type"] = "application/octet-stream"
        else:
            body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
            merged["Content-Type"] = "application/json"
        return body, merged

    @staticmethod
    def _decode(response: _Response) -> dict[str, Any]:
        status, headers, content = response
        _raise_for_status(response)
        header_length = headers.get(HEADER_LENGTH.lower())
        try:
            if header_length is not None:
                return decode_binary_response(content, int(header_length))
            decoded: dict[str, Any] = orjson.loads(content)
        except (ValueError, MLPackError) as error:
            raise ServerError(status, f"response is not a V2 response: {error}") from None
        if not isinstance(decoded, dict):
            raise ServerError(status, "response is not a JSON object")
        return decoded


# (status, lower-cased headers, body): what both HTTP back ends hand back.
_Response = tuple[int, Mapping[str, str], bytes]


def _from_httpx(response: httpx.Response) -> _Response:
    return response.status_code, response.headers, response.content


def _raise_for_status(response: _Response) -> None:
    status, headers, content = response
    if status < 400:
        return
    message = content[:500].decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):
        body = orjson.loads(content)
        if isinstance(body, dict) and "error" in body:
            message = str(body["error"])
    raise ServerError(status, message, parse_retry_after(headers.get("retry-after")))


class AsyncClient(_BaseClient):
    """An asyncio V2 REST client with a keep-alive connection pool.

    Parameters:
        url: ``host:port`` or ``http(s)://host:port``.
        timeout: seconds for connect, read and write.
        headers: sent with every request.
        binary: use the binary tensor data extension instead of JSON.
        use_ssl: ``https`` for URLs given without a scheme.
        verify: check the server's TLS certificate.
        max_connections: connections kept open to the server.
        transport: an httpx transport to use instead of the network (tests, ASGI apps).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        binary: bool = False,
        use_ssl: bool = False,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(url, binary=binary, headers=headers, use_ssl=use_ssl, token=token)
        self._pool: ConnectionPool | None = None
        self._http: httpx.AsyncClient | None = None
        if transport is None:
            self._pool = ConnectionPool(
                self.url, timeout=timeout, max_connections=max_connections, verify=verify
            )
        else:
            self._http = httpx.AsyncClient(timeout=timeout, verify=verify, transport=transport)

    async def _request(
        self, method: str, url: str, headers: dict[str, str], body: bytes = b""
    ) -> _Response:
        if self._pool is not None:
            return await self._pool.request(method, url[len(self.url) :], headers, body)
        assert self._http is not None
        with _map_httpx_errors(self.url):
            return _from_httpx(await self._http.request(method, url, content=body, headers=headers))

    async def infer_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one inference request; return the response as a dict (binary data decoded)."""
        body, merged = self._encode(request, headers)
        url = self._infer_path(model_name, model_version)
        return self._decode(await self._request("POST", url, merged, body))

    async def infer(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InferenceResponse:
        """Send one inference request; return an ``InferenceResponse``."""
        payload = await self.infer_json(
            model_name, request, model_version=model_version, headers=headers
        )
        return InferenceResponse.model_validate(payload)

    async def _get(self, path: str) -> _Response:
        return await self._request(
            "GET", self.url + path if path.startswith("/") else path, dict(self.headers)
        )

    async def live(self) -> bool:
        return (await self._get("/v2/health/live"))[0] == 200

    async def ready(self) -> bool:
        return (await self._get("/v2/health/ready"))[0] == 200

    async def model_ready(self, model_name: str, model_version: str | None = None) -> bool:
        return (await self._get(self._model_path(model_name, model_version) + "/ready"))[0] == 200

    async def metadata(self) -> MetadataServerResponse:
        return MetadataServerResponse.model_validate(self._decode(await self._get("/v2")))

    async def model_metadata(
        self, model_name: str, model_version: str | None = None
    ) -> MetadataModelResponse:
        response = await self._get(self._model_path(model_name, model_version))
        return MetadataModelResponse.model_validate(self._decode(response))

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class Client(_BaseClient):
    """A blocking V2 REST client with a keep-alive connection pool (parameters: ``AsyncClient``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        binary: bool = False,
        use_ssl: bool = False,
        verify: bool | ssl.SSLContext = True,
        max_connections: int = 10,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(url, binary=binary, headers=headers, use_ssl=use_ssl, token=token)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.Client(
            timeout=timeout, verify=verify, limits=limits, transport=transport
        )

    def infer_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send one inference request; return the response as a dict (binary data decoded)."""
        body, merged = self._encode(request, headers)
        url = self._infer_path(model_name, model_version)
        with _map_httpx_errors(self.url):
            response = self._http.post(url, content=body, headers=merged)
        return self._decode(_from_httpx(response))

    def infer(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> InferenceResponse:
        """Send one inference request; return an ``InferenceResponse``."""
        payload = self.infer_json(model_name, request, model_version=model_version, headers=headers)
        return InferenceResponse.model_validate(payload)

    def _get(self, path: str) -> httpx.Response:
        with _map_httpx_errors(self.url):
            return self._http.get(
                self.url + path if path.startswith("/") else path, headers=self.headers
            )

    def live(self) -> bool:
        return self._get("/v2/health/live").status_code == 200

    def ready(self) -> bool:
        return self._get("/v2/health/ready").status_code == 200

    def model_ready(self, model_name: str, model_version: str | None = None) -> bool:
        return self._get(self._model_path(model_name, model_version) + "/ready").status_code == 200

    def metadata(self) -> MetadataServerResponse:
        return MetadataServerResponse.model_validate(self._decode(_from_httpx(self._get("/v2"))))

    def model_metadata(
        self, model_name: str, model_version: str | None = None
    ) -> MetadataModelResponse:
        response = self._get(self._model_path(model_name, model_version))
        return MetadataModelResponse.model_validate(self._decode(_from_httpx(response)))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
