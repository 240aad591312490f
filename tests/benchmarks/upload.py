"""Upload throughput: a 1 GiB model version through the gateway into local storage.

Measurements in one run: writing the same bytes straight to the storage disk (the baseline
the service cannot beat), uploading in one request directly to the model hub and through the
gateway, and uploading through the gateway with an upload session (the model hub's default
part size, 4 in flight, timed from creating the session to the answer of `complete`), and
again with 16 MiB parts, to show what each part costs. The model hub's and gateway's
resident memory is sampled throughout: a streaming upload keeps it flat. Then a second
session is cut off at 50% (the part in flight there breaks off mid-way, the client stops) and
resumed from what the session says is missing, counting the bytes sent again. Targets:
>= 100 MB/s through the gateway, <= 64 MiB RSS growth in the model hub, the session >= 1.0x
the one-request upload, and only the interrupted part sent again.

`python -m tests.benchmarks.upload` runs it alone; UPLOAD_BENCH_BYTES sets the weights' size
(default 1 GiB; e.g. 134217728 for a quick check).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

from tests.benchmarks.harness import bench_database, bench_user, reset_redis_db, services

SIZE = int(os.environ.get("UPLOAD_BENCH_BYTES") or 1024**3)
CHUNK = 1 << 20
BOUNDARY = "llmnet-bench-boundary"
SMALL_PARTS = 16 * CHUNK
IN_FLIGHT = 4
CONFIG = json.dumps({"model_type": "llama"}).encode()
TOKENIZER = b'{"version": "1.0"}'


@dataclass
class Result:
    name: str
    seconds: float
    rss_growth: dict[str, int]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    part_size: int = 0

    @property
    def mb_per_s(self) -> float:
        return SIZE / self.seconds / 1e6


def _safetensors_header() -> bytes:
    header = json.dumps(
        {"w": {"dtype": "F32", "shape": [SIZE // 4], "data_offsets": [0, SIZE]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def _part(name: str, filename: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()


async def _body() -> AsyncIterator[bytes]:
    """config + tokenizer + a 1 GiB safetensors file, generated as it is sent."""
    yield _part("files", "config.json") + CONFIG + b"\r\n"
    yield _part("files", "tokenizer.json") + TOKENIZER + b"\r\n"
    yield _part("files", "model.safetensors") + _safetensors_header()
    block = os.urandom(CHUNK)
    for _ in range(SIZE // CHUNK):
        yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class Weights:
    """The same safetensors file as _body's (header, then one random MiB over and over), any
    byte range of it generated as it is sent."""

    def __init__(self) -> None:
        self.header = _safetensors_header()
        self.block = os.urandom(CHUNK)
        self.size = len(self.header) + SIZE
        self._rotations: dict[int, bytes] = {0: self.block}

    def _rotated(self, at: int) -> bytes:
        if at not in self._rotations:
            self._rotations[at] = self.block[at:] + self.block[:at]
        return self._rotations[at]

    async def range(
        self, start: int, length: int, *, stop_after: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes start..start+length; with `stop_after`, the connection breaks off after
        that many (the client went away)."""
        end = start + length
        position = start
        sent = 0
        while position < end:
            if position < len(self.header):
                piece = self.header[position : min(end, len(self.header))]
            else:
                # Whole blocks are sent as they are (no copy per MiB, as _body sends them):
                # the block rotated to where the range starts in it.
                rotated = self._rotated((position - len(self.header)) % CHUNK)
                piece = rotated if end - position >= CHUNK else rotated[: end - position]
            if stop_after is not None and sent + len(piece) > stop_after:
                raise ConnectionAbortedError("the client went away mid-part")
            position += len(piece)
            sent += len(piece)
            yield piece


class RssSampler:
    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._start = {name: p.memory_info().rss for name, p in self._processes.items()}
        self._peak = dict(self._start)
        self._cpu = {name: _cpu(p) for name, p in self._processes.items()}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for name, process in self._processes.items():
                self._peak[name] = max(self._peak[name], process.memory_info().rss)
            await asyncio.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def growth(self) -> dict[str, int]:
        return {name: self._peak[name] - self._start[name] for name in self._processes}

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) each process spent since the sampler started."""
        return {name: _cpu(p) - self._cpu[name] for name, p in self._processes.items()}


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _disk_baseline(directory: Path) -> Result:
    path = directory / "baseline.bin"
    block = os.urandom(CHUNK)
    started = time.perf_counter()
    with path.open("wb") as out:
        for _ in range(SIZE // CHUNK):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return Result("disk write+fsync (base)", elapsed, {})


async def _upload(
    name: str, url: str, model_id: str, auth: dict[str, str], pids: dict[str, int]
) -> Result:
    headers = {**auth, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    with RssSampler(pids) as sampler:
        started = time.perf_counter()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/api/v1/models/{model_id}/versions",
                data=_body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=600),
            ) as response,
        ):
            body = await response.text()
        elapsed = time.perf_counter() - started
        cpu = sampler.cpu()
    if response.status != 202:
        raise RuntimeError(f"upload failed: {response.status} {body[:300]}")
    version = json.loads(body)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deleted = await client.delete(
            f"/api/v1/models/{model_id}/versions/{version['id']}", headers=auth
        )
        deleted.raise_for_status()
    return Result(name, elapsed, sampler.growth(), cpu)


@dataclass
class Resume:
    parts_before: int  # parts of the weights recorded before the cut
    cut_sent: int  # bytes of the interrupted part sent before the cut
    resent: int  # bytes sent again after resuming (parts that had been started before)
    interrupted: int  # the interrupted part's length


class Session:
    """One upload session through the gateway, its parts sent IN_FLIGHT at a time."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        model_id: str,
        auth: dict[str, str],
        part_size: int | None = None,
    ):
        self._http = http
        self._auth = auth
        self._base = f"{url}/api/v1/models/{model_id}/upload-sessions"
        self.weights = Weights()
        self.id = ""
        self.part_size = part_size or 0  # None: the server's default, known once created

    async def create(self) -> None:
        files = [
            {"name": "config.json", "size": len(CONFIG)},
            {"name": "tokenizer.json", "size": len(TOKENIZER)},
            {"name": "model.safetensors", "size": self.weights.size},
        ]
        request: dict[str, Any] = {"files": files}
        if self.part_size:
            request["part_size"] = self.part_size
        async with self._http.post(self._base, json=request, headers=self._auth) as response:
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"create failed: {response.status} {body}")
        self.id = body["id"]
        self.part_size = body["part_size"]

    def offsets(self) -> list[int]:
        return list(range(0, self.weights.size, self.part_size))

    async def put(self, name: str, offset: int, data: AsyncIterator[bytes] | bytes) -> None:
        length = len(data) if isinstance(data, bytes) else None
        headers = {**self._auth, "Content-Type": "application/octet-stream"}
        if length is None:
            length = min(self.part_size, self.weights.size - offset)
        headers["Content-Length"] = str(length)
        async with self._http.put(
            f"{self._base}/{self.id}/files/{name}",
            params={"offset": str(offset)},
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=600),
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"part failed: {response.status} {await response.text()}")

    async def send_weights(self, offsets: list[int], *, cut_at: int | None = None) -> int | None:
        """Send the weights' parts at `offsets`, IN_FLIGHT at a time. With `cut_at`, the part
        holding that byte breaks off half-way and no part starts after it (the client went
        away); returns the bytes of it that were sent."""
        pending = list(offsets)
        stopped = False
        cut_sent: int | None = None

        async def worker() -> None:
            nonlocal stopped, cut_sent
            while pending and not stopped:
                offset = pending.pop(0)
                length = min(self.part_size, self.weights.size - offset)
                if cut_at is not None and offset <= cut_at < offset + length:
                    stopped = True
                    cut_sent = length // 2
                    with contextlib.suppress(aiohttp.ClientError, ConnectionAbortedError):
                        await self.put(
                            "model.safetensors",
                            offset,
                            self.weights.range(offset, length, stop_after=cut_sent),
                        )
                    return
                await self.put("model.safetensors", offset, self.weights.range(offset, length))

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return cut_sent

    async def missing(self) -> dict[str, list[int]]:
        async with self._http.get(f"{self._base}/{self.id}", headers=self._auth) as response:
            body = await response.json()
        return {f["name"]: f["missing_offsets"] for f in body["files"]}

    async def complete(self) -> dict[str, Any]:
        async with self._http.post(
            f"{self._base}/{self.id}/complete",
            headers=self._auth,
            timeout=aiohttp.ClientTimeout(total=600),
        ) as response:
            body: dict[str, Any] = await response.json()
            if response.status != 202:
                raise RuntimeError(f"complete failed: {response.status} {body}")
        return body


async def _delete_version(url: str, model_id: str, auth: dict[str, str], version_id: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deleted = await client.delete(
            f"/api/v1/models/{model_id}/versions/{version_id}", headers=auth
        )
        deleted.raise_for_status()


async def _session_upload(
    url: str,
    model_id: str,
    auth: dict[str, str],
    pids: dict[str, int],
    part_size: int | None = None,
) -> Result:
    with RssSampler(pids) as sampler:
        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            session = Session(http, url, model_id, auth, part_size)
            await session.create()
            await session.put("config.json", 0, CONFIG)
            await session.put("tokenizer.json", 0, TOKENIZER)
            await session.send_weights(session.offsets())
            version = await session.complete()
        elapsed = time.perf_counter() - started
        cpu = sampler.cpu()
    await _delete_version(url, model_id, auth, version["id"])
    name = f"session, {session.part_size >> 20} MiB parts"
    return Result(name, elapsed, sampler.growth(), cpu, part_size=session.part_size)


async def _interrupted_session(url: str, model_id: str, auth: dict[str, str]) -> Resume:
    async with aiohttp.ClientSession() as http:
        session = Session(http, url, model_id, auth)
        await session.create()
        await session.put("config.json", 0, CONFIG)
        await session.put("tokenizer.json", 0, TOKENIZER)
        offsets = session.offsets()
        cut_at = session.weights.size // 2
        cut_sent = await session.send_weights(offsets, cut_at=cut_at)
        assert cut_sent is not None
        started = {o for o in offsets if o <= cut_at}  # sent, or begun, before the cut
        missing = (await session.missing())["model.safetensors"]
        interrupted = next(o for o in offsets if o <= cut_at < o + session.part_size)
    # A new connection pool: the client that resumes is a new process.
    async with aiohttp.ClientSession() as http:
        session_again = Session(http, url, model_id, auth)
        session_again.id, session_again.part_size = session.id, session.part_size
        await session_again.send_weights(missing)
        version = await session_again.complete()
    await _delete_version(url, model_id, auth, version["id"])
    part_size = session.part_size
    resent = sum(min(part_size, session.weights.size - o) for o in missing if o in started)
    return Resume(
        parts_before=len(offsets) - len(missing),
        cut_sent=cut_sent,
        resent=resent,
        interrupted=min(part_size, session.weights.size - interrupted),
    )


async def run() -> list[str]:
    await reset_redis_db()
    with tempfile.TemporaryDirectory() as work:
        async with bench_database() as database_url:
            with services(database_url, Path(work), ["accounts", "models_hub", "gateway"]) as bench:
                gateway = bench.urls["gateway"]
                user = await bench_user(bench, "uploader", developer=True)
                async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
                    created = await client.post(
                        "/api/v1/models", json={"name": "Big"}, headers=user.gateway_headers
                    )
                    model = created.json()
                watched = {"models_hub": bench.pids["models_hub"], "gateway": bench.pids["gateway"]}
                storage = Path(work) / "storage"
                storage.mkdir(exist_ok=True)
                results = [
                    await _disk_baseline(storage),
                    await _upload(
                        "direct to model hub",
                        bench.urls["models_hub"],
                        model["id"],
                        user.direct_headers,
                        watched,
                    ),
                    await _upload(
                        "through the gateway", gateway, model["id"], user.gateway_headers, watched
                    ),
                    await _session_upload(gateway, model["id"], user.gateway_headers, watched),
                    await _session_upload(
                        gateway, model["id"], user.gateway_headers, watched, SMALL_PARTS
                    ),
                ]
                resume = await _interrupted_session(gateway, model["id"], user.gateway_headers)
    return _report(results, resume)


def _report(results: list[Result], resume: Resume) -> list[str]:
    baseline, direct, through, session, small = results
    lines = [
        f"Upload benchmark: one {SIZE / 2**30:g} GiB safetensors version, local storage backend",
        f"{'path':<24}{'MB/s':>8}{'vs disk':>9}{'hub RSS +MiB':>14}{'gw RSS +MiB':>13}"
        f"{'hub CPU s':>11}{'gw CPU s':>10}",
    ]
    for r in results:
        hub = r.rss_growth.get("models_hub")
        gw = r.rss_growth.get("gateway")
        hub_cpu = r.cpu_seconds.get("models_hub")
        gw_cpu = r.cpu_seconds.get("gateway")
        lines.append(
            f"{r.name:<24}{r.mb_per_s:>8.0f}{r.mb_per_s / baseline.mb_per_s:>9.2f}"
            f"{'' if hub is None else f'{hub / 2**20:.1f}':>14}"
            f"{'' if gw is None else f'{gw / 2**20:.1f}':>13}"
            f"{'' if hub_cpu is None else f'{hub_cpu:.2f}':>11}"
            f"{'' if gw_cpu is None else f'{gw_cpu:.2f}':>10}"
        )
    rate = through.mb_per_s
    growth = max(r.rss_growth["models_hub"] for r in results[1:]) / 2**20
    lines.append(
        f"through the gateway: {rate:.0f} MB/s (target >= 100: "
        f"{'met' if rate >= 100 else 'MISSED'}); gateway/direct "
        f"{through.mb_per_s / direct.mb_per_s:.2f}"
    )
    ratio = session.mb_per_s / through.mb_per_s
    lines.append(
        f"upload session (the default {session.part_size >> 20} MiB parts, {IN_FLIGHT} in "
        f"flight, create to complete) / one request, both through the gateway: {ratio:.2f}x "
        f"(target >= 1.0: {'met' if ratio >= 1.0 else 'MISSED'}); with "
        f"{small.part_size >> 20} MiB parts {small.mb_per_s / through.mb_per_s:.2f}x"
    )
    lines.append(
        f"model hub peak RSS growth: {growth:.1f} MiB (target <= 64: "
        f"{'met' if growth <= 64 else 'MISSED'})"
    )
    only_interrupted = resume.resent <= resume.interrupted
    lines.append(
        f"interrupted at 50% ({resume.parts_before} parts stored, the next broke off after "
        f"{resume.cut_sent / 2**20:.1f} MiB): re-sent {resume.resent / 2**20:.1f} MiB after "
        f"resuming, the interrupted part is {resume.interrupted / 2**20:.1f} MiB (target: only "
        f"it: {'met' if only_interrupted else 'MISSED'})"
    )
    return lines


if __name__ == "__main__":
    import uvloop

    print("\n".join(uvloop.run(run())))
