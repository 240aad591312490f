"""`llmnet chat MODEL`: an interactive terminal chat over a conversation.

Answers stream token by token; while one streams, typing `/stop` (or Ctrl-C) stops it, its
text kept. At the prompt: `/regenerate` (another answer to the last turn), `/model
OWNER/SLUG` (switch the model for the next turns), `/stop` (stop an answer still being
written), `/help`, `/quit` (or Ctrl-D).
"""

from __future__ import annotations

import argparse
import select
import sys
import threading
from collections.abc import Iterator
from typing import Any

from llmnet_client._core import Event
from llmnet_client._sync import Client

HELP = "Commands: /stop, /regenerate, /model OWNER/SLUG, /help, /quit (or Ctrl-D)."
PROMPT = "you> "


class ChatSession:
    def __init__(self, client: Client, conversation: Any, model_ref: str) -> None:
        self.client = client
        self.conversation_id = str(conversation["id"])
        self.model_ref = model_ref
        self.last_answer_id: str | None = None
        self.streaming_id: str | None = None

    def show(self, events: Iterator[Event]) -> None:
        """Print an answer's tokens as they come; `/stop` or Ctrl-C on stdin stops it."""
        state: dict[str, Any] = {"error": None, "final": None}

        def consume() -> None:
            try:
                for event in events:
                    data = event.json()
                    if event.event == "start":
                        self.streaming_id = str(data["message"]["id"])
                        self.last_answer_id = self.streaming_id
                        sys.stdout.write(f"{self.model_ref}> ")
                    elif event.event == "delta":
                        sys.stdout.write(data["text"])
                    elif event.event in ("done", "error"):
                        state["final"] = data
                    sys.stdout.flush()
            except Exception as exc:  # handed to the main thread
                state["error"] = exc

        worker = threading.Thread(target=consume, daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.05)
                if not worker.is_alive():
                    break
                if _line_ready() and sys.stdin.readline().strip() == "/stop":
                    self.stop()
        except KeyboardInterrupt:
            self.stop()
            worker.join()
        self.streaming_id = None
        sys.stdout.write("\n")
        if state["error"] is not None:
            raise state["error"]
        final = state["final"] or {}
        status = final.get("status")
        if status and status != "complete":
            reason = final.get("error") or final.get("detail") or ""
            print(f"[{status}{': ' + reason if reason else ''}]")
        sys.stdout.flush()

    def stop(self) -> None:
        if self.streaming_id is None:
            print("(nothing is being written)")
            return
        self.client.conversations.stop(self.conversation_id, self.streaming_id)

    def handle(self, text: str) -> bool:
        """One line typed at the prompt; False ends the chat."""
        if text in ("/quit", "/exit"):
            return False
        if text == "/help":
            print(HELP)
        elif text == "/stop":
            self.stop()
        elif text == "/regenerate":
            if self.last_answer_id is None:
                print("(no answer to regenerate yet)")
            else:
                self.show(
                    self.client.conversations.regenerate_stream(
                        self.conversation_id, self.last_answer_id
                    )
                )
        elif text.startswith("/model"):
            parts = text.split(maxsplit=1)
            if len(parts) < 2:
                print(f"(chatting with {self.model_ref}; /model OWNER/SLUG switches)")
            else:
                self.client.conversations.update(self.conversation_id, model=parts[1])
                self.model_ref = parts[1]
                print(f"(now chatting with {self.model_ref})")
        elif text.startswith("/"):
            print(f"(unknown command {text.split()[0]}) {HELP}")
        else:
            self.show(self.client.conversations.stream(self.conversation_id, text))
        return True


def _line_ready() -> bool:
    try:
        readable, _, _ = select.select([sys.stdin], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


def run_chat(client: Client, args: argparse.Namespace) -> int:
    model_ref = args.model
    if "/" not in model_ref:
        model_ref = str(client.models.get(model_ref)["ref"])
    parameters = {
        key: value
        for key, value in (("temperature", args.temperature), ("max_tokens", args.max_tokens))
        if value is not None
    }
    conversation = client.conversations.create(
        model_ref, title=args.title, system_prompt=args.system, parameters=parameters or None
    )
    session = ChatSession(client, conversation, model_ref)
    print(f"Chatting with {model_ref} (conversation {conversation['id']}). {HELP}")
    while True:
        try:
            line = input(PROMPT)
        except EOFError:
            print()
            return 0
        except KeyboardInterrupt:
            print()
            return 0
        text = line.strip()
        if text and not session.handle(text):
            return 0
