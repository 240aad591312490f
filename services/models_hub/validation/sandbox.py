"""The validation child: load an uploaded model exactly as inference will, generate a few tokens,
and print one JSON line.

    python -m services.models_hub.validation.sandbox --model-dir D --output-dir O \
        [--gguf-file NAME] [--max-new-tokens 8]

A GGUF is first converted into O (a plain safetensors folder: what inference will serve) and that
folder is what gets loaded. Success prints `{"ok": true, ...metadata...}` and exits 0; any failure
prints `{"ok": false, "error": "<what the uploader can fix>"}` and exits 1.

The runner (runner.py) starts this under resource limits, with a scrubbed environment and, where
the kernel allows it, in an empty network namespace. Independently of that, importing this module
installs a network guard (an audit hook, which cannot be removed) that refuses every socket
connection, send and name lookup that is not a Unix socket, so a model file cannot phone home.

It imports nothing from the web stack (no fastapi, sqlalchemy, settings) so it starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

PROMPT = "Hello! Please introduce yourself in one short sentence."
MAX_ERROR_CHARS = 600

# Audit events (https://docs.python.org/3/library/audit_events.html) that touch the network.
# The first four carry the socket, and Unix sockets pass; name lookups are all refused.
_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"})
_LOOKUP_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
_guard_installed = False


class NetworkRefused(PermissionError):
    """Raised for any network access from inside the sandbox."""


def _network_audit_hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _SOCKET_EVENTS:
        if getattr(args[0], "family", None) == socket.AF_UNIX:
            return
        raise NetworkRefused(f"network access is disabled in the validation sandbox ({event})")
    if event in _LOOKUP_EVENTS:
        raise NetworkRefused(f"network access is disabled in the validation sandbox ({event})")


def install_network_guard() -> None:
    """Refuse every non-Unix socket connect/send/bind and every name lookup in this process.

    An audit hook sees these events whether Python code goes through `socket.socket`,
    `_socket` directly or a library built on them; it cannot be removed once added. Native code
    that calls libc itself bypasses it: the network namespace the runner sets up covers that."""
    global _guard_installed
    if not _guard_installed:
        sys.addaudithook(_network_audit_hook)
        _guard_installed = True


install_network_guard()


# ---- output -------------------------------------------------------------------------------------

_result_fd = 1


def _reserve_stdout() -> None:
    """Keep fd 1 for the single JSON result line: everything else written to stdout (library
    prints, native code) goes to stderr instead."""
    global _result_fd
    _result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _emit(payload: dict[str, Any]) -> None:
    line = json.dumps(payload, ensure_ascii=True) + "\n"
    os.write(_result_fd, line.encode("ascii"))


def _fail(message: str) -> NoReturn:
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 1] + "…"
    _emit({"ok": False, "error": message})
    sys.stderr.flush()
    sys.exit(1)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in (
            "out of memory",
            "can't allocate memory",
            "cannot allocate memory",
            "failed to map segment",
            "std::bad_alloc",
        )
    )


def _describe(exc: BaseException, doing: str) -> str:
    if _is_out_of_memory(exc):
        return f"the model ran out of memory while {doing}: it needs more memory than allowed"
    text = str(exc).strip() or type(exc).__name__
    known = (
        ("Unrecognized model", "model type is not supported by transformers: " + text),
        ("does not appear to have a file named", "a model file is missing: " + text),
        ("Error while deserializing header", "a safetensors file is corrupt: " + text),
        ("incomplete metadata", "a safetensors file is truncated: " + text),
    )
    for needle, message in known:
        if needle in text:
            return message
    return f"the model failed while {doing}: {type(exc).__name__}: {text}"


# ---- the check ----------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--gguf-file", default=None)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    return parser.parse_args(argv)


def _context_length(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def validate(
    model_dir: Path, output_dir: Path, *, gguf_file: str | None, max_new_tokens: int
) -> dict[str, Any]:
    """Check the files, convert (GGUF), load, generate; return the success report.

    Raises ValueError (the files are wrong) or RuntimeError (they did not load or run), both
    with a message for the uploader."""
    # Light: torch and transformers are imported below.
    from shared import model_files, model_loading

    # The checks that need no transformers come first, so a broken upload fails in a blink.
    if gguf_file is not None:
        if Path(gguf_file).name != gguf_file:
            raise model_files.ModelFileError("the GGUF file name must not contain a folder")
        model_files.check_gguf_file(model_dir / gguf_file)
    else:
        model_files.check_model_files(model_dir)

    try:
        import torch
        import transformers

        # Resolve transformers' lazy modules now so that load_seconds times the load alone.
        _ = transformers.AutoModelForCausalLM, transformers.AutoTokenizer, transformers.GgufConfig
    except Exception as exc:  # an import failing under the memory limit, mostly
        raise RuntimeError(_describe(exc, "starting")) from exc
    transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)

    converted = gguf_file is not None
    if gguf_file is not None:
        try:
            model_loading.convert_gguf_to_safetensors(model_dir / gguf_file, output_dir)
        except model_files.ModelFileError:
            raise
        except Exception as exc:
            raise RuntimeError(_describe(exc, "converting the GGUF file")) from exc
        model_dir = output_dir

    model: Any
    tokenizer: Any
    started = time.perf_counter()
    try:
        model, tokenizer = model_loading.load_causal_lm(model_dir, device="cpu")
    except model_files.ModelFileError:
        raise
    except Exception as exc:
        raise RuntimeError(_describe(exc, "loading")) from exc
    load_seconds = time.perf_counter() - started

    has_chat_template = bool(getattr(tokenizer, "chat_template", None))
    try:
        if has_chat_template:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": PROMPT}], tokenize=False, add_generation_prompt=True
            )
            inputs = tokenizer(str(text), return_tensors="pt", add_special_tokens=False)
        else:
            inputs = tokenizer(PROMPT, return_tensors="pt")
    except Exception as exc:
        if has_chat_template and not _is_out_of_memory(exc):
            problem = f"{type(exc).__name__}: {exc}"
            raise RuntimeError(f"the chat template does not work: {problem}") from exc
        raise RuntimeError(_describe(exc, "tokenizing the prompt")) from exc
    input_ids = inputs["input_ids"]
    attention_mask = inputs.get("attention_mask")
    if input_ids.shape[1] == 0:
        raise RuntimeError("the tokenizer turned the test prompt into no tokens")
    text_config = model.config.get_text_config()
    context_length = _context_length(text_config)
    if context_length is not None and input_ids.shape[1] + max_new_tokens > context_length:
        # A model with a very short context still gets its test: keep the prompt's end.
        keep = max(1, context_length - max_new_tokens)
        input_ids = input_ids[:, -keep:]
        attention_mask = None if attention_mask is None else attention_mask[:, -keep:]

    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        pad_token_id = tokenizer.eos_token_id
    try:
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_token_id,
                return_dict_in_generate=True,
                output_logits=True,
            )
        generate_seconds = time.perf_counter() - started
    except Exception as exc:
        raise RuntimeError(_describe(exc, "generating text")) from exc

    logits = output.logits or ()
    if not all(bool(torch.isfinite(step).all()) for step in logits):
        raise RuntimeError(
            "the model produced NaN or infinite values: its weights are probably corrupt"
        )
    new_tokens = output.sequences[0, input_ids.shape[1] :]
    vocab_size = getattr(text_config, "vocab_size", None)
    if not isinstance(vocab_size, int):
        vocab_size = int(model.get_input_embeddings().weight.shape[0])
    return {
        "ok": True,
        "architecture": type(model).__name__,
        "parameter_count": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "context_length": context_length,
        "vocab_size": vocab_size,
        "has_chat_template": has_chat_template,
        "load_seconds": round(load_seconds, 4),
        "tokens_per_second": round(len(new_tokens) / max(generate_seconds, 1e-9), 3),
        "sample": tokenizer.decode(new_tokens, skip_special_tokens=True),
        "converted": converted,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _reserve_stdout()
    if args.max_new_tokens < 1:
        _fail("--max-new-tokens must be at least 1")
    try:
        report = validate(
            args.model_dir,
            args.output_dir,
            gguf_file=args.gguf_file,
            max_new_tokens=args.max_new_tokens,
        )
    except ValueError as exc:  # ModelFileError and friends: the message is for the uploader
        _fail(str(exc))
    except RuntimeError as exc:
        _fail(str(exc))
    except BaseException as exc:
        _fail(_describe(exc, "validating"))
    _emit(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
