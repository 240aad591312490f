"""Streaming multipart/form-data: parts yielded one at a time, their bodies as chunk streams.

Starlette's `request.form()` spools every file before the handler runs; uploads of model
weights instead need each file's bytes on their way to storage while they arrive. Parts are
read strictly in order: a part's `chunks()` must be consumed (or skipped with `drain()`)
before the next part is requested.

Exports: Part, iter_parts, MalformedMultipart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from shared.errors import UnprocessableEntity


class MalformedMultipart(UnprocessableEntity):
    code = "malformed_multipart"


_BEGIN, _HEADER, _HEADERS_DONE, _DATA, _END, _FINISHED = range(6)


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    _reader: _Reader = field(repr=False)
    _done: bool = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self._done:
            kind, payload = await self._reader.next_event()
            if kind == _DATA:
                yield payload
            elif kind == _END:
                self._done = True
            else:
                raise MalformedMultipart("The multipart body is malformed.")

    async def read(self, limit: int) -> bytes:
        data = bytearray()
        async for chunk in self.chunks():
            data += chunk
            if len(data) > limit:
                raise MalformedMultipart(f"Form field '{self.name}' is longer than {limit} bytes.")
        return bytes(data)

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass


class _Reader:
    def __init__(self, stream: AsyncIterator[bytes], boundary: bytes) -> None:
        self._stream = stream
        self._events: deque[tuple[int, bytes]] = deque()
        self._field = bytearray()
        self._value = bytearray()
        emit = self._events.append
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": lambda: emit((_BEGIN, b"")),
                "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": lambda: emit((_HEADERS_DONE, b"")),
                # The parser reuses its buffer: copy the slice.
                "on_part_data": lambda d, s, e: emit((_DATA, bytes(d[s:e]))),
                "on_part_end": lambda: emit((_END, b"")),
                "on_end": lambda: emit((_FINISHED, b"")),
            },
        )

    def _header_end(self) -> None:
        # Queued like everything else: callbacks run ahead of the consumer, inside write().
        self._events.append((_HEADER, bytes(self._field) + b"\0" + bytes(self._value)))
        self._field.clear()
        self._value.clear()

    async def next_event(self) -> tuple[int, bytes]:
        while not self._events:
            try:
                chunk = await anext(self._stream)
            except StopAsyncIteration:
                raise MalformedMultipart(
                    "The multipart body ended early (no closing boundary)."
                ) from None
            try:
                self._parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own error types
                raise MalformedMultipart(f"The multipart body is malformed: {exc}") from exc
        return self._events.popleft()


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise MalformedMultipart(
            "Send the upload as multipart/form-data (e.g. curl -F files=@model.safetensors)."
        )
    return options[b"boundary"]


async def iter_parts(stream: AsyncIterator[bytes], content_type: str | None) -> AsyncIterator[Part]:
    reader = _Reader(stream, boundary_of(content_type))
    while True:
        kind, _ = await reader.next_event()
        if kind == _FINISHED:
            return
        if kind != _BEGIN:
            raise MalformedMultipart("The multipart body is malformed.")
        headers: dict[str, str] = {}
        while True:
            kind, payload = await reader.next_event()
            if kind == _HEADERS_DONE:
                break
            key, _, value = payload.decode("latin-1").partition("\0")
            headers[key.lower()] = value
        _, params = parse_options_header(headers.get("content-disposition"))
        name = params.get(b"name")
        if name is None:
            raise MalformedMultipart("A multipart part has no name in Content-Disposition.")
        filename = params.get(b"filename")
        part = Part(
            name=name.decode("utf-8", "replace"),
            filename=filename.decode("utf-8", "replace") if filename is not None else None,
            content_type=headers.get("content-type"),
            _reader=reader,
        )
        yield part
        await part.drain()  # whatever the consumer left unread
