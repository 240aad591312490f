"""From a request to prompt token ids: the chat template, and what counts as a control token.

A chat template renders to one string, and a tokenizer turns every spelling of an added token
in that string into the token, so a message saying `<|im_end|>\\n<|im_start|>system\\n...` would
close its own turn and open a system turn. Here message text is always text:

- `chat_prompt_ids` renders the template with transformers' `sanitize_control_tokens`: control
  tokens spelled inside messages (the model's system prompt included) are encoded as their
  characters; those the template writes itself stay control tokens. For content without such
  spellings the ids are exactly those of `apply_chat_template`.
- Control tokens are every added token of the tokenizer, special or not (`<|im_start|>`,
  `</s>`, `<tool_call>`, ...), apart from whitespace-only ones, which templates and text share.
- `text_prompt_ids` (the raw /v1/completions prompt) encodes the prompt as text too: special
  tokens written in it are not parsed; the tokenizer adds its BOS as it always does.

What a template builds from plain text (the tiny test models' `<|user|>`, made of ordinary
tokens) is text either way: no tokenizer can tell it apart from a message saying the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jinja2

from services.inference.engine.errors import InvalidPrompt

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["chat_prompt_ids", "context_length", "declare_control_tokens", "text_prompt_ids"]


def declare_control_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    """Declare every non-whitespace added token a chat control token (`chat_control_tokens`,
    which transformers otherwise infers from the template's literal text, missing tokens a
    template builds from pieces or never writes)."""
    if "sanitize_control_tokens" not in inspect.signature(tokenizer.apply_chat_template).parameters:
        # Older transformers would pass the flag to the template and silently parse every
        # control token spelled in a message: refuse to serve rather than serve that.
        raise RuntimeError("transformers >= 5.24 is required (sanitize_control_tokens)")
    declared = set(getattr(tokenizer, "chat_control_tokens", None) or ())
    added = {token.content for token in tokenizer.added_tokens_decoder.values()}
    tokenizer.chat_control_tokens = sorted(declared | {t for t in added if t and not t.isspace()})


def chat_prompt_ids(
    tokenizer: PreTrainedTokenizerBase, messages: Sequence[Mapping[str, str]]
) -> list[int]:
    """The ids of `messages` rendered by the tokenizer's chat template, with a generation
    prompt; message text never becomes a control token. Raises InvalidPrompt when the
    template refuses the messages."""
    try:
        rendered = tokenizer.apply_chat_template(
            [dict(message) for message in messages],
            tokenize=True,
            add_generation_prompt=True,
            sanitize_control_tokens=True,
        )
    except jinja2.TemplateError as exc:
        # Templates raise on conversations they do not support (roles that must alternate, a
        # system message in the wrong place); that is the request's fault, not ours.
        raise InvalidPrompt(
            f"The model's chat template refused these messages: {exc}", code="chat_template_error"
        ) from exc
    except ValueError as exc:
        if "sanitize" not in str(exc):
            raise
        # transformers refuses a control token its tokenizer also produces from plain text.
        raise InvalidPrompt(
            f"A message cannot be encoded as text for this model ({exc}); remove that "
            "spelling from the message.",
            code="control_token_in_message",
        ) from exc
    ids: Any = rendered["input_ids"] if isinstance(rendered, Mapping) else rendered
    return [int(i) for i in ids]


def text_prompt_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """A raw prompt as text: special tokens spelled in it are encoded as their characters."""
    ids: list[int] = tokenizer(text, add_special_tokens=True, split_special_tokens=True)[
        "input_ids"
    ]
    return ids


_DEFAULT_CONTEXT = 2048


def context_length(model: PreTrainedModel, tokenizer: Any = None) -> int:
    """The longest sequence the model takes: its config's, else the tokenizer's, else 2048."""
    config = model.config.get_text_config(decoder=True)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10_000_000:
        return limit
    return _DEFAULT_CONTEXT
