"""Requests to FLORA over kept-alive HTTP/1.1 connections of its own: the catalog's schema requests, the polls of
runs and the creates of runs.

httpx spends 1-3 ms of CPU on every request (its client layers, and httpcore's pool, whose cost per request grows
with its number of connections: a socket check of every idle one): the 500 schema requests of a 1,000-technique
catalog took over a second of start-up that way, competing with the MCP SDK's import for the one interpreter lock,
and a hundred runs in flight paid it on every poll. Here one costs about a tenth of a millisecond. The request is
httpx's own (`AsyncClient.build_request`: the same URL, headers and bytes), and so is the answer (`httpx.Response`,
which undoes the gzip or deflate httpx asks for), so the client's retry policy and error translation see what they
saw before; a failure raises the httpx exception httpx would have raised (`ConnectError`, `ReadTimeout`,
`RemoteProtocolError`...), of the same class as to whether the request may have been sent.
Used only for FLORA's own host, without a proxy and without a transport of the caller's; for GETs, and for POSTs that
carry an `Idempotency-Key` (a create), which alone may be sent again when a connection kept idle turns out closed:
FLORA answers a key it has seen with the run it made.
"""

from __future__ import annotations

import ssl
import urllib.request

import anyio
import httpx
from anyio.abc import ByteStream
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["KeepAliveRequests", "may_send_again", "usable_for"]

MAX_HEAD = 64 * 1024
MAX_CONNECTIONS = 100
"""Connections open at once (as httpx's pool allows): a 101st GET waits for one of them."""
MAX_IDLE = MAX_CONNECTIONS
"""Connections kept open between requests: a hundred runs polled together reuse theirs, not reconnect each time."""
KEEPALIVE_EXPIRY = 5.0
"""Seconds a connection may sit idle and still be used (httpx's default): a load balancer or NAT on the way may have
forgotten an older one without a word, and a request on it would wait out the whole timeout."""


def usable_for(base_url: str) -> bool:
    """Whether these requests may reach `base_url`: http(s), and no proxy in the environment (httpx would use it)."""
    scheme = httpx.URL(base_url).scheme
    proxies = urllib.request.getproxies()
    return scheme in ("http", "https") and not ({"http", "https", "all"} & {k.lower() for k in proxies})


def may_send_again(request: httpx.Request) -> bool:
    """Whether `request` may go again after a connection kept idle gave no answer: a GET, or a keyed POST."""
    return request.method == "GET" or (request.method == "POST" and "idempotency-key" in request.headers)


class _NoResponse(httpx.RemoteProtocolError):
    """Nothing came back: on a connection that had been idle, the server closed it meanwhile."""


class _Connection:
    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)

    async def exchange(self, request: httpx.Request) -> tuple[httpx.Response, bool]:
        """Send `request`, read its answer; the answer, and whether the connection may serve another."""
        url = request.url
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1\r\n".encode("ascii")]
        head += [name + b": " + value + b"\r\n" for name, value in request.headers.raw]
        try:
            await self.stream.send(b"".join(head) + b"\r\n" + request.content)
            raw_head = await self.reader.receive_until(b"\r\n\r\n", MAX_HEAD)
        except (anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            if self.reader.buffer:
                raise httpx.RemoteProtocolError("peer closed connection in the response head",
                                                request=request) from None
            raise _NoResponse("Server disconnected without sending a response.", request=request) from None
        except anyio.DelimiterNotFound:
            raise httpx.RemoteProtocolError("response head too long", request=request) from None
        lines = raw_head.split(b"\r\n")
        version, _, rest = lines[0].partition(b" ")
        status_text, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or not status_text.isdigit():
            raise httpx.RemoteProtocolError("illegal status line", request=request)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise httpx.RemoteProtocolError("illegal header line", request=request)
            headers.append((name.strip(), value.strip()))
        fields = {name.lower(): value for name, value in headers}
        keep = version == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        try:
            body = await self._body(fields, request)
        except anyio.IncompleteRead:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                            request=request) from None
        if body is None:
            keep = False
            body = await self._until_closed()
        response = httpx.Response(int(status_text), headers=headers, content=body,
                                  request=request, extensions={"http_version": version, "reason_phrase": reason})
        return response, keep

    async def _body(self, fields: dict[bytes, bytes], request: httpx.Request) -> bytes | None:
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            chunks: list[bytes] = []
            while True:
                size_line = await self.reader.receive_until(b"\r\n", MAX_HEAD)
                try:
                    size = int(size_line.split(b";")[0], 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("illegal chunk size", request=request) from None
                if size == 0:
                    while await self.reader.receive_until(b"\r\n", MAX_HEAD):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(await self.reader.receive_exactly(size))
                await self.reader.receive_exactly(2)
        length = fields.get(b"content-length")
        if length is None:
            return None  # the body ends when the server closes the connection
        if not length.isdigit():
            raise httpx.RemoteProtocolError("illegal Content-Length", request=request)
        return await self.reader.receive_exactly(int(length)) if int(length) else b""

    async def _until_closed(self) -> bytes:
        parts = [self.reader.buffer]
        try:
            while True:
                parts.append(await self.stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b"".join(parts)

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        except (OSError, anyio.BrokenResourceError):
            pass


class KeepAliveRequests:
    """Requests to one host over kept-alive connections (up to `max_connections` at once, as many kept)."""

    def __init__(self, *, timeout: float, connect_timeout: float, max_connections: int = MAX_CONNECTIONS,
                 keepalive_expiry: float = KEEPALIVE_EXPIRY) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle = min(MAX_IDLE, max_connections)
        self.keepalive_expiry = keepalive_expiry
        self._idle: list[tuple[_Connection, float]] = []  # each with when it went idle (anyio's clock)
        self._open = anyio.Semaphore(max_connections, fast_acquire=True)
        self._ssl: ssl.SSLContext | None = None

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The answer to `request` (built by the client, its body read), or the httpx exception of its failure."""
        async with self._open:
            while self._idle:
                connection, since = self._idle.pop()
                if anyio.current_time() - since > self.keepalive_expiry:
                    await connection.aclose()
                    continue
                try:
                    return await self._exchange(connection, request)
                except _NoResponse:
                    if not may_send_again(request):
                        raise
                    # Closed by the server while idle: asked again on a new connection (as httpcore does for a GET).
            return await self._exchange(await self._connect(request), request)

    async def _exchange(self, connection: _Connection, request: httpx.Request) -> httpx.Response:
        keep = False
        try:
            try:
                with anyio.fail_after(self.timeout):
                    response, keep = await connection.exchange(request)
            except TimeoutError:
                raise httpx.ReadTimeout("timed out", request=request) from None
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
        finally:
            if keep and len(self._idle) < self.max_idle:
                self._idle.append((connection, anyio.current_time()))
            else:
                await connection.aclose()
        return response

    async def _connect(self, request: httpx.Request) -> _Connection:
        url = request.url
        tls = url.scheme == "https"
        if tls and self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        try:
            with anyio.fail_after(self.connect_timeout):
                port = url.port or (443 if tls else 80)
                stream: ByteStream
                if self._ssl is not None and tls:
                    stream = await anyio.connect_tcp(url.host, port, ssl_context=self._ssl, tls_hostname=url.host,
                                                     tls_standard_compatible=False)
                else:
                    stream = await anyio.connect_tcp(url.host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return _Connection(stream)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await connection.aclose()
