"""Fine-tuning: training tokens/s against a plain transformers `Trainer`, and serving meanwhile.

1. Throughput. The same chat dataset (rendered with the model's chat template, loss on the
   assistant tokens: the fine-tune worker's own tokenization) and the same hyperparameters
   (epochs, batch size, learning rate, seed; AdamW, no weight decay, linear decay without
   warmup, gradient clipping at 1.0: the Trainer's defaults) are trained by
   - llmnet: the fine-tune worker's trainer (services/models_hub/training/trainer.py), and
   - Trainer: `transformers.Trainer` with a collator padding the same way,
   for `full` and `lora`, each in a fresh process with the same thread count, one after the
   other. Training tokens/s = non-padding tokens fed / training seconds (model loading and
   saving excluded for both). Target: llmnet >= 0.9x Trainer.
2. Serving while a fine-tune runs (`--size demo` only: it needs the platform's services and
   the demo model): greedy completions through the gateway, one client, alone and then while
   a LoRA fine-tune of the same model trains in the background; the slowdown is reported.

    python -m tests.benchmarks.fine_tune [--size tiny|demo]

`--size demo` (what `make bench` runs) trains SmolLM2-135M-Instruct, the demo model; `--size
tiny` trains a 2-layer test model on a few examples, a smoke run of a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import machine_line

OURS = "llmnet"
REFERENCE = "Trainer"
TARGET = 0.9
SIZES: dict[str, dict[str, Any]] = {
    # examples, epochs, batch size, threads
    "tiny": {"examples": 16, "epochs": 2, "batch_size": 4, "threads": 2, "serve_requests": 0},
    "demo": {"examples": 64, "epochs": 1, "batch_size": 8, "threads": 0, "serve_requests": 8},
}
LEARNING_RATES = {"full": 2e-5, "lora": 2e-4}
SUBJECTS = ["rivers", "stars", "bread", "trains", "cats", "music", "rain", "robots"]


def _dataset(path: Path, examples: int) -> Path:
    rows = []
    for i in range(examples):
        subject = SUBJECTS[i % len(SUBJECTS)]
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": f"Tell me something about {subject} (#{i})."},
                    {
                        "role": "assistant",
                        "content": f"Here is a short note about {subject}: they are part of "
                        f"everyday life, and people have written about {subject} for "
                        "centuries. " * 2,
                    },
                ]
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


# ---- the child processes ----------------------------------------------------------------------


def _child_ours(config: dict[str, Any]) -> dict[str, Any]:
    from services.models_hub.training.trainer import TrainSpec, train

    spec = TrainSpec.from_json(config)
    spec = TrainSpec(**{**spec.__dict__, "save": False})
    report = train(spec, lambda _: None)
    return {"tokens": report["train_tokens"], "seconds": report["train_seconds"]}


def _child_trainer(config: dict[str, Any]) -> dict[str, Any]:
    import torch
    from transformers import Trainer, TrainingArguments

    from services.models_hub.training.trainer import TrainSpec, collate, prepare

    spec = TrainSpec.from_json(config)
    model, tokenizer, examples, _ = prepare(spec)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tokens = 0

    def collator(batch: list[Any]) -> dict[str, torch.Tensor]:
        nonlocal tokens
        out = collate(batch, pad_id)
        tokens += int(out["attention_mask"].sum())
        return out

    args = TrainingArguments(
        output_dir=str(spec.output_dir),
        per_device_train_batch_size=spec.batch_size,
        num_train_epochs=spec.epochs,
        learning_rate=spec.learning_rate,
        weight_decay=0.0,
        warmup_steps=0,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=spec.seed,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=spec.device == "cpu",
        dataloader_num_workers=0,
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator)
    started = time.monotonic()
    trainer.train()
    return {"tokens": tokens, "seconds": time.monotonic() - started}


def _child(kind: str, config_file: Path) -> None:
    import torch

    config = json.loads(config_file.read_text())
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or torch.get_num_threads()))
    result = _child_ours(config) if kind == OURS else _child_trainer(config)
    print(json.dumps(result), flush=True)


# ---- the parent -------------------------------------------------------------------------------


def _run_child(kind: str, config: dict[str, Any], work: Path, threads: int) -> dict[str, Any]:
    config_file = work / f"{kind}-{config['hyperparameters']['method']}.json"
    config_file.write_text(json.dumps(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["TOKENIZERS_PARALLELISM"] = "false"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    argv = [sys.executable, "-m", "tests.benchmarks.fine_tune", "--child", kind, str(config_file)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["tokens_per_s"] = result["tokens"] / max(result["seconds"], 1e-9)
    return result


def _config(
    model_dir: Path, data: Path, work: Path, method: str, size: dict[str, Any]
) -> dict[str, Any]:
    return {
        "model_dir": str(model_dir),
        "output_dir": str(work / f"out-{method}"),
        "train_file": str(data),
        "validation_file": None,
        "hyperparameters": {
            "method": method,
            "epochs": size["epochs"],
            "learning_rate": LEARNING_RATES[method],
            "batch_size": size["batch_size"],
            "max_seq_length": 512,
            "seed": 0,
            "lora_rank": 8,
            "lora_alpha": 16,
        },
    }


def throughput(model_dir: Path, work: Path, size: dict[str, Any]) -> list[str]:
    data = _dataset(work / "train.jsonl", size["examples"])
    lines = [f"{'method':<8}{'system':<10}{'tokens':>9}{'seconds':>10}{'tok/s':>10}"]
    checks = []
    for method in ("full", "lora"):
        config = _config(model_dir, data, work, method, size)
        results = {}
        for kind in (REFERENCE, OURS):
            print(f"fine-tune {method}: {kind}", file=sys.stderr, flush=True)
            results[kind] = _run_child(kind, config, work, size["threads"])
            r = results[kind]
            lines.append(
                f"{method:<8}{kind:<10}{r['tokens']:>9}{r['seconds']:>10.2f}"
                f"{r['tokens_per_s']:>10.1f}"
            )
        ratio = results[OURS]["tokens_per_s"] / results[REFERENCE]["tokens_per_s"]
        verdict = "ok" if ratio >= TARGET else "BELOW TARGET"
        checks.append(
            f"{method}: {OURS} {ratio:.2f}x {REFERENCE}'s training tokens/s "
            f"(target >= {TARGET}x): {verdict}"
        )
    return lines + checks


async def serving_while_training(size: dict[str, Any], work: Path) -> tuple[list[str], Path]:
    """Completion tokens/s through the gateway, alone and during a LoRA fine-tune; and the
    demo model's servable folder."""
    import aiohttp

    from tests.benchmarks.harness import bench_database, bench_user, reset_redis_db, services
    from tests.benchmarks.inference import SERVICE_ENV, _prepare_model, _scoped_environ

    await reset_redis_db()
    with _scoped_environ(SERVICE_ENV):
        async with bench_database() as database_url:
            names = ["accounts", "models_hub", "inference", "gateway"]
            with services(database_url, work, names) as bench:
                model, folder = await _prepare_model(bench)
                user = await bench_user(bench, "bench")
                url = f"{bench.urls['gateway']}/v1/chat/completions"
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": "Tell me a long story."}],
                    "temperature": 0,
                    "max_tokens": 64,
                }

                async def measure() -> float:
                    tokens, started = 0, time.perf_counter()
                    async with aiohttp.ClientSession(headers=user.gateway_headers) as session:
                        for _ in range(size["serve_requests"]):
                            async with session.post(url, json=body) as response:
                                answer = await response.json()
                                tokens += int(answer["usage"]["completion_tokens"])
                    return tokens / (time.perf_counter() - started)

                await measure()  # loads the model and warms it up
                alone = await measure()
                data = _dataset(work / "serve-train.jsonl", 256)
                config = _config(folder, data, work, "lora", {**size, "epochs": 50})
                config_file = work / "background.json"
                config_file.write_text(json.dumps(config))
                argv = [sys.executable, "-m", "tests.benchmarks.fine_tune", "--child", OURS]
                trainer = subprocess.Popen(  # noqa: ASYNC220 - it runs beside, not awaited
                    [*argv, str(config_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:
                    await asyncio.sleep(20)  # past model loading, into the training steps
                    during = await measure()
                finally:
                    trainer.kill()
                    trainer.wait()
    line = (
        f"serving: {alone:.1f} tok/s alone, {during:.1f} tok/s while a LoRA fine-tune trains "
        f"({during / alone:.2f}x)"
    )
    return [line], folder


async def run(size_name: str = "demo") -> list[str]:
    size = SIZES[size_name]
    started = time.perf_counter()
    lines = ["", f"== fine-tuning ({size_name}) ==", machine_line()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if size_name == "tiny":
            from tests.models_hub.tiny_models import build_tiny_llama

            model_dir = build_tiny_llama(work / "model")
            lines += throughput(model_dir, work, size)
            lines.append("serving while training: skipped at --size tiny (needs the demo model)")
        else:
            serving_work = work / "serving"
            serving_work.mkdir()
            serving, model_dir = await serving_while_training(size, serving_work)
            lines += serving
            lines += throughput(model_dir, work, size)
    lines.append(f"fine-tuning benchmark took {time.perf_counter() - started:.0f} s")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.fine_tune")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "CONFIG"))
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return 0
    print("\n".join(asyncio.run(run(args.size))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
