"""The training process: fine-tune a model folder on a JSONL dataset and save the result.

    python -m services.models_hub.training.trainer --spec spec.json

`spec.json` names the model folder, the output folder, the dataset files, the hyperparameters
and the device. The process prints one JSON line per report on stdout:
`{"event": "progress", "step", "total_steps", "epoch", "train_loss", "validation_loss"?,
"tokens_per_second", "eta_seconds"}`, then `{"event": "done", ...final losses...}` once the
weights are saved (safetensors, LoRA merged into full weights), or `{"event": "error",
"error": "..."}` with exit code 1. The runner (runner.py) starts it in the sandbox the
validation child uses (scrubbed environment, own session, no network) and kills it to cancel.

Loading goes through `shared.model_loading` (no `trust_remote_code`, safetensors only, no
Hub). It imports nothing from the web stack, so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.models_hub.fine_tunes.dataset import (
    IGNORE_INDEX,
    TokenizedExample,
    parse_jsonl,
    tokenize_example,
)

if TYPE_CHECKING:
    import torch

Emit = Callable[[dict[str, Any]], None]
MAX_ERROR_CHARS = 600
MAX_GRAD_NORM = 1.0  # as transformers' Trainer clips by default


@dataclass(frozen=True)
class TrainSpec:
    model_dir: Path
    output_dir: Path
    train_file: Path
    validation_file: Path | None
    method: str  # full | lora
    epochs: int
    learning_rate: float
    batch_size: int
    max_seq_length: int
    seed: int
    lora_rank: int = 8
    lora_alpha: int = 16
    device: str = "cpu"
    save: bool = True

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrainSpec:
        params = raw["hyperparameters"]
        return cls(
            model_dir=Path(raw["model_dir"]),
            output_dir=Path(raw["output_dir"]),
            train_file=Path(raw["train_file"]),
            validation_file=Path(raw["validation_file"]) if raw.get("validation_file") else None,
            method=params["method"],
            epochs=int(params["epochs"]),
            learning_rate=float(params["learning_rate"]),
            batch_size=int(params["batch_size"]),
            max_seq_length=int(params["max_seq_length"]),
            seed=int(params["seed"]),
            lora_rank=int(params.get("lora_rank", 8)),
            lora_alpha=int(params.get("lora_alpha", 16)),
            device=str(raw.get("device", "cpu")),
        )


def load_examples(tokenizer: Any, path: Path, max_seq_length: int) -> list[TokenizedExample]:
    """The file's examples, tokenized as the API checked them (longer ones are cut, which
    only happens if the tokenizer changed in between)."""
    parsed = parse_jsonl(path.read_bytes(), max_examples=10**9)
    if parsed.problems:
        first = parsed.problems[0]
        raise ValueError(f"{path.name} line {first.line} {first.message}")
    examples = []
    for example in parsed.examples:
        tokenized = tokenize_example(tokenizer, example)
        examples.append(
            TokenizedExample(
                tokenized.input_ids[:max_seq_length], tokenized.labels[:max_seq_length]
            )
        )
    return examples


def collate(batch: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (padding takes no loss)."""
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    torch.manual_seed(seed)


def _apply_lora(model: Any, spec: TrainSpec) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def _evaluate(model: Any, examples: list[TokenizedExample], spec: TrainSpec, pad_id: int) -> float:
    """Mean loss per trained token over `examples`."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), spec.batch_size):
            batch = examples[start : start + spec.batch_size]
            inputs = {k: v.to(spec.device) for k, v in collate(batch, pad_id).items()}
            count = int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += float(model(**inputs).loss) * count
            tokens += count
    model.train()
    return total / max(tokens, 1)


def prepare(spec: TrainSpec) -> tuple[Any, Any, list[TokenizedExample], list[TokenizedExample]]:
    """The model (LoRA-wrapped when asked), its tokenizer and the tokenized datasets."""
    import torch

    from shared.model_loading import load_causal_lm

    _seed(spec.seed)
    model, tokenizer = load_causal_lm(spec.model_dir, device=spec.device, dtype=torch.float32)
    train = load_examples(tokenizer, spec.train_file, spec.max_seq_length)
    validation = (
        load_examples(tokenizer, spec.validation_file, spec.max_seq_length)
        if spec.validation_file is not None
        else []
    )
    if spec.method == "lora":
        model = _apply_lora(model, spec)
    model.train()
    return model, tokenizer, train, validation


def train(spec: TrainSpec, emit: Emit, *, parent_pid: int | None = None) -> dict[str, Any]:
    """Run the fine-tune, reporting through `emit`; returns the final report. Stops (exit 1)
    when `parent_pid` is no longer this process's parent (its worker died)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    model, tokenizer, train_set, validation_set = prepare(spec)
    pad_id = _pad_id(tokenizer)
    steps_per_epoch = math.ceil(len(train_set) / spec.batch_size)
    total_steps = steps_per_epoch * spec.epochs
    trainable = [p for p in model.parameters() if p.requires_grad]
    # transformers' Trainer defaults: AdamW (its fused kernel: one pass over all parameters
    # per step, not one per tensor), no weight decay, linear decay without warmup.
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, weight_decay=0.0, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, total_steps)  # type: ignore[no-untyped-call]
    order = random.Random(spec.seed)  # noqa: S311 - a reproducible shuffle, not a secret
    started = time.monotonic()
    tokens_seen, step, train_loss = 0, 0, float("nan")
    report: dict[str, Any] = {}
    for epoch in range(spec.epochs):
        indices = list(range(len(train_set)))
        order.shuffle(indices)
        for start in range(0, len(indices), spec.batch_size):
            if parent_pid is not None and os.getppid() != parent_pid:
                sys.exit(1)  # the worker is gone: nobody will read or keep this run
            batch = [train_set[i] for i in indices[start : start + spec.batch_size]]
            inputs = {k: v.to(spec.device) for k, v in collate(batch, pad_id).items()}
            loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            train_loss = float(loss.detach())
            tokens_seen += int(inputs["attention_mask"].sum())
            elapsed = max(time.monotonic() - started, 1e-9)
            report = {
                "event": "progress",
                "step": step,
                "total_steps": total_steps,
                "epoch": round(epoch + (start + len(batch)) / len(indices), 4),
                "train_loss": train_loss,
                "tokens_per_second": round(tokens_seen / elapsed, 2),
                "eta_seconds": round(elapsed / step * (total_steps - step), 2),
            }
            if step % steps_per_epoch == 0 and validation_set:
                report["validation_loss"] = _evaluate(model, validation_set, spec, pad_id)
            emit(report)
    final = {
        "event": "done",
        "steps": step,
        "final_train_loss": train_loss,
        "final_validation_loss": report.get("validation_loss"),
        "train_tokens": tokens_seen,
        "train_seconds": round(time.monotonic() - started, 3),
        "tokens_per_second": report.get("tokens_per_second"),
    }
    if spec.save:
        save(model, tokenizer, spec)
    return final


def save(model: Any, tokenizer: Any, spec: TrainSpec) -> None:
    """Full weights as safetensors (LoRA merged), with the tokenizer and generation config."""
    if spec.method == "lora":
        model = model.merge_and_unload()
    model.eval()
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    # transformers 5 always writes safetensors.
    model.save_pretrained(spec.output_dir)
    tokenizer.save_pretrained(spec.output_dir)
    for name in ("generation_config.json",):
        source = spec.model_dir / name
        if source.is_file() and not (spec.output_dir / name).exists():
            (spec.output_dir / name).write_bytes(source.read_bytes())


# ---- the process ------------------------------------------------------------------------------


def _writer() -> Emit:
    """Reports go to the real stdout; anything else printed (libraries) goes to stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def emit(payload: dict[str, Any]) -> None:
        os.write(fd, (json.dumps(payload) + "\n").encode())

    return emit


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return "training ran out of memory; use a smaller batch_size or max_seq_length, or LoRA"
    message = f"training failed: {type(exc).__name__}: {text}"
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    # The validation sandbox's network guard: no socket leaves this process.
    from services.models_hub.validation import sandbox  # noqa: F401

    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    emit = _writer()
    try:
        spec = TrainSpec.from_json(json.loads(args.spec.read_text()))
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        emit(train(spec, emit, parent_pid=args.parent_pid))
    except Exception as exc:
        emit({"event": "error", "error": _describe(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
