"""Incremental detokenization and stop sequences.

`IncrementalDetokenizer` turns a stream of token ids into a stream of text deltas with the
prefix/read-offset technique of vLLM: each new token is decoded together with a few tokens before
it (the "prefix"), and text is released only once it is longer than the prefix's text and does not
end in U+FFFD, so a multi-byte UTF-8 character split over several byte-level tokens, or a word
piece whose spacing depends on its neighbours, is released whole and exactly once.

`StopMatcher` holds back any tail of the text that could still become a stop sequence and cuts the
output before the first stop sequence that completes, so a stop string never leaks, even when it
spans several tokens.

`OutputText` puts both together with EOS handling for one request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

__all__ = [
    "Decoder",
    "IncrementalDetokenizer",
    "OutputText",
    "StopMatcher",
    "make_decoder",
]

#: Decodes token ids to text (special tokens skipped, no clean-up of spaces).
Decoder = Callable[[Sequence[int]], str]

_REPLACEMENT = "\ufffd"
#: Prompt tokens decoded with the first output tokens, so that their spacing is right.
_PROMPT_CONTEXT = 5


def make_decoder(tokenizer: Any) -> Decoder:
    """A decode function for `tokenizer` that is safe to call from the engine's thread while the
    event loop uses the tokenizer: a fast tokenizer's Rust backend is copied (its Python binding
    refuses concurrent use of one object); others go through `tokenizer.decode`."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        from tokenizers import Tokenizer

        private = Tokenizer.from_str(backend.to_str())

        def decode_fast(ids: Sequence[int]) -> str:
            return str(private.decode(list(ids), skip_special_tokens=True))

        return decode_fast

    def decode_slow(ids: Sequence[int]) -> str:
        return str(
            tokenizer.decode(
                list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
        )

    return decode_slow


class IncrementalDetokenizer:
    """Token ids in, text deltas out; the deltas concatenate to the decode of all output ids (in
    the context of the prompt's last tokens)."""

    def __init__(
        self, decode: Decoder, prompt_ids: Sequence[int] = (), *, context: int = _PROMPT_CONTEXT
    ) -> None:
        self._decode = decode
        self._ids: list[int] = list(prompt_ids[-context:]) if context > 0 else []
        # Text of ids[prefix:read] has been released; ids[read:] have not been released yet.
        self._prefix = 0
        self._read = len(self._ids)

    def add(self, token_id: int) -> str:
        """Add one token; return the text it completes ("" while held back)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(_REPLACEMENT):
            delta = new_text[len(prefix_text) :]
            self._prefix = self._read
            self._read = len(self._ids)
            # Keep the window small: everything before `prefix` is never decoded again.
            if self._prefix > 0:
                del self._ids[: self._prefix]
                self._read -= self._prefix
                self._prefix = 0
            return delta
        return ""

    def flush(self) -> str:
        """Release what is still held back (at the end of the stream), U+FFFD included if the
        bytes really are incomplete."""
        if self._read == len(self._ids):
            return ""
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        if len(new_text) > len(prefix_text):
            return new_text[len(prefix_text) :]
        return ""


class StopMatcher:
    """Feed text deltas; get back the text that is safe to emit, and whether a stop sequence
    completed (the text before it is emitted, the stop string and everything after are dropped)."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        if not self._stops:
            return delta, False
        self._pending += delta
        found = -1
        for stop in self._stops:
            index = self._pending.find(stop)
            if index != -1 and (found == -1 or index < found):
                found = index
        if found != -1:
            out = self._pending[:found]
            self._pending = ""
            return out, True
        hold = self._held_back()
        cut = len(self._pending) - hold
        out = self._pending[:cut]
        self._pending = self._pending[cut:]
        return out, False

    def _held_back(self) -> int:
        """Length of the longest tail of the pending text that is a proper prefix of a stop."""
        best = 0
        pending = self._pending
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(pending)), best, -1):
                if pending.endswith(stop[:size]):
                    best = size
                    break
        return best

    def flush(self) -> str:
        out = self._pending
        self._pending = ""
        return out


class OutputText:
    """The text side of one request: detokenization, stop sequences and EOS."""

    def __init__(
        self,
        decode: Decoder,
        prompt_ids: Sequence[int],
        *,
        stop: Sequence[str] = (),
        eos_token_ids: Collection[int] = (),
        ignore_eos: bool = False,
    ) -> None:
        self._detok = IncrementalDetokenizer(decode, prompt_ids)
        self._stop = StopMatcher(stop)
        self._eos = frozenset(eos_token_ids) if not ignore_eos else frozenset()

    def add(self, token_id: int) -> tuple[str, bool]:
        """Add a sampled token; return (text to emit, stopped). An EOS token stops the output and
        is not emitted as text (what was held back is released with it)."""
        if token_id in self._eos:
            text, _ = self.finish()
            return text, True
        return self._stop.feed(self._detok.add(token_id))

    def finish(self) -> tuple[str, bool]:
        """The stream ends (EOS or a length limit): release what was held back. A stop sequence
        can still complete in the last held-back bytes; then `stopped` is True."""
        text, stopped = self._stop.feed(self._detok.flush())
        if stopped:
            return text, True
        return text + self._stop.flush(), False
