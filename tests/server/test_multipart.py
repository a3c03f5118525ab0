"""The upload route's multipart reader (server/_multipart.py) against Starlette's parser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.datastructures import UploadFile
from starlette.requests import Request

from server._multipart import Form, read_form
from server.errors import ApiError


def _body(files: list[tuple[str, str, bytes]], data: dict[str, str] | None = None
          ) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=data,
                            files=[(f, (n, b, "image/png")) for f, n, b in files])
    return request.read(), request.headers["content-type"]


async def _chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start:start + size]


async def _ours(body: bytes, ctype: str, size: int = 65536, max_files: int = 100) -> Form:
    return await read_form(_chunks(body, size), ctype, "files", max_files)


async def _starlette(body: bytes, ctype: str) -> tuple[list[tuple[str, bytes] | None],
                                                       dict[str, list[str]]]:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        more, sent = not sent, True
        return {"type": "http.request", "body": body if more else b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", ctype.encode("latin-1"))]}
    form = await Request(scope, receive).form()
    files: list[tuple[str, bytes] | None] = []
    for value in form.getlist("files"):
        if isinstance(value, UploadFile):
            files.append((value.filename or "", await value.read()))
        else:
            files.append(None)
    fields: dict[str, list[str]] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
    await form.close()
    return files, fields


def _view(form: Form) -> tuple[list[tuple[str, bytes] | None], dict[str, list[str]]]:
    return [(p.filename, p.data) if p is not None else None for p in form.files], form.fields


async def test_reads_what_starlette_reads_in_any_chunking() -> None:
    payload = [("files", f"img-{i}.png", bytes([i]) * (i * 7) + b"\r\n--not-a-boundary\r\n")
               for i in range(40)]
    payload += [("files", "é ü/名前.png", b"\x89PNG\r\n\x1a\n"), ("files", "empty.png", b""),
                ("other", "x.png", b"ignored")]
    body, ctype = _body(payload, {"labels": "cat, dog", "files": "not a file"})
    expected = await _starlette(body, ctype)
    assert len(expected[0]) == 43 and expected[0][0] is None  # httpx sends data first
    for size in (1, 2, 7, 100, 4096, len(body)):
        assert _view(await _ours(body, ctype, size)) == expected, size


async def test_a_big_part_in_many_small_chunks() -> None:
    big = bytes(range(256)) * (12 << 10)  # 3 MiB: the buffer is compacted on the way
    payload = [("files", "a.png", b"first"), ("files", "big.png", big), ("files", "c.png", b"x")]
    body, ctype = _body(payload)
    form = await _ours(body, ctype, 4093)
    assert [(p.filename, p.data) for p in form.files if p] == [(n, b) for _, n, b in payload]


async def test_unusual_dispositions_decode_as_starlette_does() -> None:
    parts = [
        b'Content-Disposition: form-data; name="files"; filename="C:\\\\photos\\\\a.png"',
        b'content-disposition: form-data; name="files"; filename="q\\"uote.png"',
        b"Content-Disposition: form-data; name=files; filename=plain.png",
        b'Content-Type: image/png\r\nContent-Disposition: form-data; name="files"; '
        b'filename="\xe4.png"',
        b'Content-Disposition: form-data; name="labels"',
    ]
    body = b"".join(b"--bnd\r\n" + head + b"\r\n\r\nDATA\r\n" for head in parts)
    body += b"--bnd--\r\nepilogue"
    ctype = "multipart/form-data; boundary=bnd"
    expected = await _starlette(body, ctype)
    assert [f[0] for f in expected[0] if f] == ["a.png", 'q"uote.png', "plain.png", "ä.png"]
    assert _view(await _ours(body, ctype, 3)) == expected
    # A preamble before the first boundary is allowed (RFC 2046) and skipped.
    assert _view(await _ours(b"preamble\r\n" + body, ctype, 5)) == expected


@pytest.mark.parametrize(("body", "status"), [
    (b"garbage", 400),
    (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n\r\nabc", 400),
    (b"--b\r\nX-Other: 1\r\n\r\nabc\r\n--b--", 400),
    (b"--bjunk\r\n\r\n--b--", 400),
])
async def test_malformed_bodies_are_400(body: bytes, status: int) -> None:
    with pytest.raises(ApiError) as caught:
        await _ours(body, "multipart/form-data; boundary=b")
    assert caught.value.status == status and caught.value.code == "bad_request"


async def test_not_a_form_is_422_and_too_many_files_413_naming_the_limit() -> None:
    for ctype in ("application/json", "multipart/form-data"):
        with pytest.raises(ApiError) as caught:
            await _ours(b"{}", ctype)
        assert caught.value.status == 422
    body, ctype = _body([("files", f"{i}.png", b"x") for i in range(6)])
    assert len((await _ours(body, ctype, max_files=6)).files) == 6
    with pytest.raises(ApiError) as caught:
        await _ours(body, ctype, max_files=5)
    assert caught.value.status == 413 and caught.value.code == "too_many_files"
    assert caught.value.details == {"limit_files": 5}
