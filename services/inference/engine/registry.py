"""`ModelRegistry`: which models are loaded in this process, and loading them.

`get(model_key, storage_prefix, files)` returns the model's running `Engine`, loading it first if
needed: the servable files are downloaded from storage into `cache_dir/<digest of the file set>/`
(a file already there with the right size is kept; every downloaded file's sha256 is checked), the
model is loaded in a thread with `shared.model_loading.load_causal_lm`, and an engine is started.
What the weights will take is estimated beforehand from their safetensors headers
(`shared.model_files`, the one file policy, read through the `safetensors` library).
Concurrent first requests for one model share one load. When the loaded models' parameter bytes
would exceed `memory_budget_bytes`, the least recently used engines are closed (their running
requests end with "abort"). A new version of a model is a new `model_key`: it loads a new engine,
and the old one leaves by LRU or through `unload(model_key)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from services.inference.engine.arrivals import Arrivals
from services.inference.engine.errors import ModelFileCorrupt, ModelTooLarge
from services.inference.engine.params import EngineOptions
from shared import heap
from shared.model_files import estimate_parameter_bytes
from shared.storage.base import Storage, validate_key

if TYPE_CHECKING:
    import torch

    from services.inference.engine.engine import Engine

__all__ = ["ModelFile", "ModelRegistry", "parse_device", "parse_dtype"]

logger = logging.getLogger("llmnet.inference.registry")

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


@dataclass(frozen=True)
class ModelFile:
    """One servable file: its name inside the model folder, size in bytes and sha256 (hex)."""

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, value: ModelFile | Mapping[str, Any] | Any) -> ModelFile:
        if isinstance(value, ModelFile):
            return value
        if isinstance(value, Mapping):
            name, size, sha256 = value["name"], value["size"], value["sha256"]
        else:
            name, size, sha256 = value.name, value.size, value.sha256
        validate_key(str(name))
        return cls(name=str(name), size=int(size), sha256=str(sha256).lower())


def parse_device(device: str) -> str:
    """ "cpu", "cuda" or "cuda:N"."""
    if device == "cpu" or device == "cuda":
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {device!r}")


def parse_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    """The dtype to load in: as configured, else float32 on CPU and bfloat16 on GPU."""
    import torch

    from shared.model_loading import default_dtype

    if dtype is None or dtype == "auto" or dtype == "":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(dtype.lower())
    if name is None:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, not {dtype!r}")
    result: torch.dtype = getattr(torch, name)
    return result


def _files_digest(files: Iterable[ModelFile]) -> str:
    canonical = json.dumps(
        sorted([f.name, f.size, f.sha256] for f in files), separators=(",", ":")
    ).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass
class _Loaded:
    engine: Engine
    bytes: int
    directory: Path


class ModelRegistry:
    """The engines of this process, loaded on demand, evicted least-recently-used first."""

    def __init__(
        self,
        storage: Storage,
        cache_dir: Path,
        *,
        device: str = "cpu",
        dtype: str | torch.dtype | None = None,
        memory_budget_bytes: int = 8 << 30,
        engine_options: EngineOptions | None = None,
    ) -> None:
        self._storage = storage
        self._cache_dir = Path(cache_dir)
        self._device = parse_device(device)
        self._dtype_setting = dtype
        self._budget = int(memory_budget_bytes)
        self._options = engine_options or EngineOptions()
        self._engines: OrderedDict[str, _Loaded] = OrderedDict()
        self._loading: dict[str, asyncio.Task[Engine]] = {}
        self._load_lock = asyncio.Lock()
        # Requests this process is preparing; every engine holds its queue for them briefly.
        self.arrivals = Arrivals()
        self.loads = 0
        self.evictions = 0
        self.downloaded_bytes = 0

    @property
    def device(self) -> str:
        return self._device

    async def get(
        self,
        model_key: str,
        storage_prefix: str,
        files: Iterable[ModelFile | Mapping[str, Any] | Any],
    ) -> Engine:
        """The running engine of `model_key` (a version id), loaded from `storage_prefix/<name>`
        for each of `files` if it is not loaded yet."""
        loaded = self._engines.get(model_key)
        if loaded is not None and not loaded.engine.closed:
            self._engines.move_to_end(model_key)
            return loaded.engine
        task = self._loading.get(model_key)
        if task is None:
            specs = [ModelFile.of(f) for f in files]
            if not specs:
                raise ValueError("a model needs at least one file")
            task = asyncio.ensure_future(self._load(model_key, storage_prefix, specs))
            self._loading[model_key] = task
            task.add_done_callback(lambda t: self._load_done(model_key, t))
        # Shielded: one caller giving up does not cancel the load the others wait for.
        return await asyncio.shield(task)

    def _load_done(self, model_key: str, task: asyncio.Task[Engine]) -> None:
        if self._loading.get(model_key) is task:
            del self._loading[model_key]
        if not task.cancelled():
            task.exception()  # retrieved: a failure is reported to the waiters, not logged twice

    async def _load(self, model_key: str, storage_prefix: str, files: list[ModelFile]) -> Engine:
        async with self._load_lock:
            current = self._engines.get(model_key)
            if current is not None and not current.engine.closed:
                return current.engine
            directory = await self.download(storage_prefix, files)
            dtype = parse_dtype(self._dtype_setting, self._device)
            if self._device != "cpu":
                import torch

                if not torch.cuda.is_available():
                    raise RuntimeError(
                        f"device {self._device!r} is configured but CUDA is not available"
                    )
            itemsize = dtype.itemsize
            estimate = await asyncio.to_thread(estimate_parameter_bytes, directory, itemsize)
            if estimate > self._budget:
                raise ModelTooLarge(
                    f"The model needs about {estimate} bytes, more than this server's model "
                    f"memory budget of {self._budget} bytes.",
                    retry_after=60,
                )
            await self._evict_until(self._budget - estimate, keep=model_key)
            from services.inference.engine.engine import Engine

            # Not pinned: the engine measures which dtype to serve in (see tuning.py).
            tuned_dtype = self._options.tune_seconds > 0 and self._dtype_setting in (
                None,
                "",
                "auto",
            )
            engine = await asyncio.to_thread(
                Engine.load,
                directory,
                device=self._device,
                dtype=None if tuned_dtype else dtype,
                options=self._options,
                name=model_key,
            )
            engine.follow(self.arrivals)
            heap.settle()  # the model lives until it is unloaded, which releases it
            self.loads += 1
            self._engines[model_key] = _Loaded(engine, engine.parameter_bytes, directory)
            self._engines.move_to_end(model_key)
            await self._evict_until(self._budget, keep=model_key)
            logger.info(
                "loaded model %s (%d bytes) on %s", model_key, engine.parameter_bytes, self._device
            )
            return engine

    async def _evict_until(self, limit: int, *, keep: str) -> None:
        """Close least-recently-used engines (never `keep`) until the loaded bytes fit `limit`."""
        while self.bytes_in_use > limit:
            victim = next((key for key in self._engines if key != keep), None)
            if victim is None:
                return
            loaded = self._engines.pop(victim)
            self.evictions += 1
            logger.info("evicting model %s (%d bytes)", victim, loaded.bytes)
            await loaded.engine.close()

    async def unload(self, model_key: str) -> bool:
        """Close the model's engine (its requests end with "abort"); False if it was not loaded."""
        loaded = self._engines.pop(model_key, None)
        if loaded is None:
            return False
        await loaded.engine.close()
        return True

    async def close(self) -> None:
        for task in list(self._loading.values()):
            task.cancel()
        engines = [loaded.engine for loaded in self._engines.values()]
        self._engines.clear()
        # All at once, and the garbage collected once after the last: a full collection per
        # engine took seconds each in a large process.
        await asyncio.gather(*(engine.close(collect=False) for engine in engines))
        await asyncio.to_thread(heap.release)

    # ---- files ----------------------------------------------------------------------------------

    async def download(self, storage_prefix: str, files: Iterable[ModelFile]) -> Path:
        """Bring the files into `cache_dir/<digest of the set>/` and return that folder."""
        specs = list(files)
        directory = self._cache_dir / _files_digest(specs)
        await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
        for spec in specs:
            target = directory / spec.name
            path = anyio.Path(target)
            if await path.is_file() and (await path.stat()).st_size == spec.size:
                continue
            await self._download_file(f"{storage_prefix.rstrip('/')}/{spec.name}", target, spec)
        return directory

    async def _download_file(self, key: str, target: Path, spec: ModelFile) -> None:
        await anyio.Path(target.parent).mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
        digest = hashlib.sha256()
        size = 0
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in self._storage.open(key):
                    size += len(chunk)
                    if size > spec.size:
                        break
                    digest.update(chunk)
                    await out.write(chunk)
            if size != spec.size:
                got = f"more than {spec.size}" if size > spec.size else str(size)
                raise ModelFileCorrupt(
                    f"Model file {spec.name} from storage has {got} bytes, but {spec.size} were "
                    "registered: the stored copy is damaged."
                )
            actual = digest.hexdigest()
            if actual != spec.sha256:
                raise ModelFileCorrupt(
                    f"Model file {spec.name} from storage has sha256 {actual}, but {spec.sha256} "
                    "was registered: the stored copy is damaged."
                )
            await anyio.to_thread.run_sync(os.replace, partial, target)
            self.downloaded_bytes += size
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.Path(partial).unlink(missing_ok=True)

    # ---- metrics --------------------------------------------------------------------------------

    @property
    def bytes_in_use(self) -> int:
        return sum(loaded.bytes for loaded in self._engines.values())

    def loaded(self) -> list[str]:
        """Loaded model keys, least recently used first."""
        return list(self._engines)

    def stats(self) -> dict[str, Any]:
        return {
            "loaded_models": len(self._engines),
            "loading_models": len(self._loading),
            "bytes_in_use": self.bytes_in_use,
            "memory_budget_bytes": self._budget,
            "loads": self.loads,
            "evictions": self.evictions,
            "downloaded_bytes": self.downloaded_bytes,
            "models": {key: loaded.engine.stats() for key, loaded in self._engines.items()},
        }
