"""REST clients for any Open Inference Protocol (V2) server: ``Client`` and ``AsyncClient``.

Both keep connections alive (HTTP/1.1; ``AsyncClient`` on a lean httptools pool) and speak
JSON, or the binary tensor extension with ``binary=True``. ``infer`` takes and returns
``mlpack.types``; ``infer_json`` takes and returns plain dicts, which is what batch jobs
use to avoid model round trips. ``infer_stream`` and ``generate_stream`` read a
server-sent event stream as it arrives and yield one response (or generate chunk) per
event; ``generate`` is the generate extension's plain JSON call.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping
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
from .sse import DEFAULT_MAX_EVENT_SIZE, SSEDecoder
from .streaming import EVENT_STREAM, MAX_ERROR_BODY, check_event_stream, chunks, generate_body

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
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        self.url = normalise_url(url, use_ssl)
        self.binary = binary
        self.max_event_size = max_event_size
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

    def _stream_call(
        self, headers: Mapping[str, str] | None, accept: str = EVENT_STREAM
    ) -> dict[str, str]:
        """Headers of a JSON call (streams are always JSON: no binary extension)."""
        return {
            **self.headers,
            **(headers or {}),
            "Content-Type": "application/json",
            "Accept": accept,
        }

    @staticmethod
    def _json_body(request: Request) -> bytes:
        payload = request.dict() if isinstance(request, InferenceRequest) else dict(request)
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)

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


def _read_error(parts: Iterator[bytes]) -> bytes:
    body = b""
    for part in parts:
        body += part
        if len(body) >= MAX_ERROR_BODY:
            break
    return body[:MAX_ERROR_BODY]


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
        token: an API key, sent as a bearer token with every call.
        max_event_size: the most bytes one server-sent event (or line) of a stream may have.
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
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        super().__init__(
            url,
            binary=binary,
            headers=headers,
            use_ssl=use_ssl,
            token=token,
            max_event_size=max_event_size,
        )
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

    async def _stream(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        decoder = SSEDecoder(self.max_event_size)
        if self._pool is not None:
            async with self._pool.stream("POST", url[len(self.url) :], headers, body) as reply:
                if reply.status >= 400:
                    error = await reply.aread(MAX_ERROR_BODY)
                    _raise_for_status((reply.status, reply.headers, error))
                check_event_stream(url, reply.headers.get("content-type"))
                async for data in reply.aiter_bytes():
                    for chunk in chunks(decoder.feed(data)):
                        yield chunk
            return
        assert self._http is not None
        with _map_httpx_errors(self.url):
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                if response.status_code >= 400:
                    content = b""
                    async for part in response.aiter_bytes():
                        content += part
                        if len(content) >= MAX_ERROR_BODY:
                            break
                    _raise_for_status((response.status_code, response.headers, content))
                check_event_stream(url, response.headers.get("content-type"))
                async for data in response.aiter_bytes():
                    for chunk in chunks(decoder.feed(data)):
                        yield chunk

    async def infer_stream_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream one request's responses as dicts, each as soon as its event arrives.

        Leave early with ``contextlib.aclosing``: closing the iterator closes the connection,
        which stops the model. An error mid-stream raises ``ServerError`` with its message.
        """
        url = self._infer_path(model_name, model_version) + "_stream"
        async for chunk in self._stream(url, self._json_body(request), self._stream_call(headers)):
            yield chunk

    async def infer_stream(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[InferenceResponse]:
        """Stream one request's responses (``POST .../infer_stream``), as they arrive."""
        async for chunk in self.infer_stream_json(
            model_name, request, model_version=model_version, headers=headers
        ):
            yield InferenceResponse.model_validate(chunk)

    async def generate(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The generate extension: ``text_input`` (and parameters) in, the JSON answer out."""
        url = self._model_path(model_name, model_version) + "/generate"
        body = generate_body(text_input, parameters)
        call = self._stream_call(headers, accept="application/json")
        return self._decode(await self._request("POST", url, call, body))

    async def generate_stream(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The generate extension streamed: one chunk (``{"text_output": ...}``) per event."""
        url = self._model_path(model_name, model_version) + "/generate_stream"
        body = generate_body(text_input, parameters)
        async for chunk in self._stream(url, body, self._stream_call(headers)):
            yield chunk

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
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
    ) -> None:
        super().__init__(
            url,
            binary=binary,
            headers=headers,
            use_ssl=use_ssl,
            token=token,
            max_event_size=max_event_size,
        )
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

    def _stream(self, url: str, body: bytes, headers: dict[str, str]) -> Iterator[dict[str, Any]]:
        decoder = SSEDecoder(self.max_event_size)
        with (
            _map_httpx_errors(self.url),
            self._http.stream("POST", url, content=body, headers=headers) as response,
        ):
            if response.status_code >= 400:
                error = _read_error(response.iter_bytes())
                _raise_for_status((response.status_code, response.headers, error))
            check_event_stream(url, response.headers.get("content-type"))
            for data in response.iter_bytes():
                yield from chunks(decoder.feed(data))

    def infer_stream_json(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Stream one request's responses as dicts, each as soon as its event arrives.

        Closing the iterator early closes the connection, which stops the model. An error
        mid-stream raises ``ServerError`` with the server's message.
        """
        url = self._infer_path(model_name, model_version) + "_stream"
        yield from self._stream(url, self._json_body(request), self._stream_call(headers))

    def infer_stream(
        self,
        model_name: str,
        request: Request,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[InferenceResponse]:
        """Stream one request's responses (``POST .../infer_stream``), as they arrive."""
        for chunk in self.infer_stream_json(
            model_name, request, model_version=model_version, headers=headers
        ):
            yield InferenceResponse.model_validate(chunk)

    def generate(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The generate extension: ``text_input`` (and parameters) in, the JSON answer out."""
        url = self._model_path(model_name, model_version) + "/generate"
        body = generate_body(text_input, parameters)
        call = self._stream_call(headers, accept="application/json")
        with _map_httpx_errors(self.url):
            response = self._http.post(url, content=body, headers=call)
        return self._decode(_from_httpx(response))

    def generate_stream(
        self,
        model_name: str,
        text_input: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        model_version: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The generate extension streamed: one chunk (``{"text_output": ...}``) per event."""
        url = self._model_path(model_name, model_version) + "/generate_stream"
        body = generate_body(text_input, parameters)
        yield from self._stream(url, body, self._stream_call(headers))

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
