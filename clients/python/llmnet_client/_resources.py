"""The API's resource families, written once for both clients.

A method returns what its client's runner makes of the request: the decoded JSON in the sync
`Client`, an awaitable of it in the `AsyncClient`; listings return an iterator over every item
(pages fetched as needed); streams an iterator of `Event`s that resumes after a dropped
connection with `Last-Event-ID`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from llmnet_client._core import Call, Credentials, Event, PageSpec, StreamSpec, body

R = TypeVar("R")
P = TypeVar("P")
S = TypeVar("S")


class Runner(abc.ABC, Generic[R, P, S]):
    """Runs calls: `R` is a call's result, `P` a listing's iterator, `S` a stream's."""

    credentials: Credentials

    @abc.abstractmethod
    def call(self, call: Call) -> R: ...

    @abc.abstractmethod
    def pages(self, spec: PageSpec) -> P: ...

    @abc.abstractmethod
    def stream(self, spec: StreamSpec) -> S: ...


def _seg(value: object) -> str:
    return quote(str(value), safe="")


def _ref_path(ref: str) -> str:
    owner, _, slug = ref.partition("/")
    return f"{_seg(owner)}/{_seg(slug)}"


class _Family(Generic[R, P, S]):
    def __init__(self, runner: Runner[R, P, S]) -> None:
        self._r = runner


class Auth(_Family[R, P, S]):
    def register(
        self, username: str, email: str, password: str, *, display_name: str | None = None
    ) -> R:
        fields = body(username=username, email=email, password=password)
        fields.update(body(display_name=display_name))
        return self._r.call(Call("POST", "/api/v1/auth/register", json=fields, auth=False))

    def login(self, username: str, password: str) -> R:
        """Log in; the client keeps the tokens and refreshes them when they expire."""
        return self._r.call(
            Call(
                "POST",
                "/api/v1/auth/login",
                json={"username": username, "password": password},
                then=self._r.credentials.store,
                auth=False,
            )
        )

    def refresh(self) -> R:
        return self._r.call(
            Call(
                "POST",
                "/api/v1/auth/refresh",
                json={"refresh_token": self._r.credentials.refresh_token},
                then=self._r.credentials.store,
                auth=False,
            )
        )

    def logout(self) -> R:
        return self._r.call(
            Call(
                "POST",
                "/api/v1/auth/logout",
                json={"refresh_token": self._r.credentials.refresh_token},
                then=self._r.credentials.clear,
            )
        )


class Users(_Family[R, P, S]):
    def me(self) -> R:
        return self._r.call(Call("GET", "/api/v1/users/me"))

    def update_me(self, **fields: Any) -> R:
        return self._r.call(Call("PATCH", "/api/v1/users/me", json=fields))

    def get(self, username: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/users/{_seg(username)}"))

    def follow(self, username: str) -> R:
        return self._r.call(Call("POST", f"/api/v1/users/{_seg(username)}/follow"))

    def unfollow(self, username: str) -> R:
        return self._r.call(Call("DELETE", f"/api/v1/users/{_seg(username)}/follow"))


class ApiKeys(_Family[R, P, S]):
    _PATH = "/api/v1/users/me/api-keys"

    def create(
        self, name: str, *, scopes: Sequence[str] | None = None, expires_at: str | None = None
    ) -> R:
        fields = body(name=name, scopes=list(scopes) if scopes else None, expires_at=expires_at)
        return self._r.call(Call("POST", self._PATH, json=fields))

    def list(self) -> R:
        return self._r.call(Call("GET", self._PATH))

    def revoke(self, key_id: str) -> R:
        return self._r.call(Call("DELETE", f"{self._PATH}/{_seg(key_id)}"))


class Models(_Family[R, P, S]):
    def list(
        self,
        *,
        q: str | None = None,
        owner: str | None = None,
        tag: str | None = None,
        status: str | None = None,
        source: str | None = None,
        sort: str | None = None,
        page_size: int = 50,
        limit: int | None = None,
    ) -> P:
        """Every model matching the filters (an iterator; pages are fetched as needed)."""
        params = {
            "q": q,
            "owner": owner,
            "tag": tag,
            "status": status,
            "source": source,
            "sort": sort,
            "limit": page_size,
        }
        return self._r.pages(PageSpec(Call("GET", "/api/v1/models", params=params), limit=limit))

    def create(self, name: str, **fields: Any) -> R:
        """Create a model: description, tags, license, visibility, card, system_prompt, ..."""
        return self._r.call(Call("POST", "/api/v1/models", json={"name": name, **fields}))

    def get(self, model: str) -> R:
        """A model by id or by `<owner>/<slug>`."""
        if "/" in model:
            return self._r.call(Call("GET", f"/api/v1/models/by-ref/{_ref_path(model)}"))
        return self._r.call(Call("GET", f"/api/v1/models/{_seg(model)}"))

    def update(self, model_id: str, **fields: Any) -> R:
        return self._r.call(Call("PATCH", f"/api/v1/models/{_seg(model_id)}", json=fields))

    def delete(self, model_id: str) -> R:
        return self._r.call(Call("DELETE", f"/api/v1/models/{_seg(model_id)}"))

    def like(self, model_id: str) -> R:
        return self._r.call(Call("POST", f"/api/v1/models/{_seg(model_id)}/like"))

    def unlike(self, model_id: str) -> R:
        return self._r.call(Call("DELETE", f"/api/v1/models/{_seg(model_id)}/like"))

    def follow(self, model_id: str) -> R:
        return self._r.call(Call("POST", f"/api/v1/models/{_seg(model_id)}/follow"))

    def unfollow(self, model_id: str) -> R:
        return self._r.call(Call("DELETE", f"/api/v1/models/{_seg(model_id)}/follow"))

    def lineage(self, model_id: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/models/{_seg(model_id)}/lineage"))


class Versions(_Family[R, P, S]):
    """A model's versions. Uploads through resumable sessions: `client.upload(...)`."""

    def list(self, model_id: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/models/{_seg(model_id)}/versions"))

    def get(self, model_id: str, version_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/versions/{_seg(version_id)}"
        return self._r.call(Call("GET", path))

    def activate(self, model_id: str, version_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/versions/{_seg(version_id)}/activate"
        return self._r.call(Call("POST", path))

    def delete(self, model_id: str, version_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/versions/{_seg(version_id)}"
        return self._r.call(Call("DELETE", path))

    def download(self, model_id: str, version_id: str, name: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/versions/{_seg(version_id)}/files/{_seg(name)}"
        return self._r.call(Call("GET", path, expect="bytes"))


class UploadSessions(_Family[R, P, S]):
    """The upload-session calls themselves; `client.upload(...)` drives them."""

    def create(
        self, model_id: str, files: Sequence[Mapping[str, Any]], *, part_size: int | None = None
    ) -> R:
        fields = body(files=[dict(f) for f in files], part_size=part_size)
        path = f"/api/v1/models/{_seg(model_id)}/upload-sessions"
        return self._r.call(Call("POST", path, json=fields))

    def get(self, model_id: str, session_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/upload-sessions/{_seg(session_id)}"
        return self._r.call(Call("GET", path))

    def put_part(self, model_id: str, session_id: str, name: str, offset: int, data: bytes) -> R:
        path = (
            f"/api/v1/models/{_seg(model_id)}/upload-sessions/{_seg(session_id)}/files/{_seg(name)}"
        )
        return self._r.call(
            Call(
                "PUT",
                path,
                params={"offset": offset},
                content=data,
                headers={"content-type": "application/octet-stream"},
                timeout=300.0,
            )
        )

    def complete(self, model_id: str, session_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/upload-sessions/{_seg(session_id)}/complete"
        return self._r.call(Call("POST", path, timeout=300.0))

    def abort(self, model_id: str, session_id: str) -> R:
        path = f"/api/v1/models/{_seg(model_id)}/upload-sessions/{_seg(session_id)}"
        return self._r.call(Call("DELETE", path))


class Providers(_Family[R, P, S]):
    def list(self) -> R:
        return self._r.call(Call("GET", "/api/v1/providers"))

    def create(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str | None = None,
        models: Sequence[Mapping[str, Any]] | None = None,
        **fields: Any,
    ) -> R:
        payload = {"name": name, "base_url": base_url, **fields}
        payload.update(body(api_key=api_key, models=[dict(m) for m in models or []] or None))
        return self._r.call(Call("POST", "/api/v1/providers", json=payload))

    def get(self, provider_id: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/providers/{_seg(provider_id)}"))

    def update(self, provider_id: str, **fields: Any) -> R:
        path = f"/api/v1/providers/{_seg(provider_id)}"
        return self._r.call(Call("PATCH", path, json=fields))

    def delete(self, provider_id: str) -> R:
        return self._r.call(Call("DELETE", f"/api/v1/providers/{_seg(provider_id)}"))

    def add_model(self, provider_id: str, remote_model: str, **fields: Any) -> R:
        path = f"/api/v1/providers/{_seg(provider_id)}/models"
        return self._r.call(Call("POST", path, json={"remote_model": remote_model, **fields}))

    def test(self, provider_id: str) -> R:
        return self._r.call(Call("POST", f"/api/v1/providers/{_seg(provider_id)}/test"))


def _conversation_items(page: Any) -> list[Any]:
    return [item for group in page["groups"] for item in group["items"]]


class Conversations(_Family[R, P, S]):
    _PATH = "/api/v1/conversations"

    def create(
        self,
        model: str,
        *,
        title: str | None = None,
        system_prompt: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        template_id: str | None = None,
    ) -> R:
        fields = body(
            model=model,
            title=title,
            system_prompt=system_prompt,
            parameters=dict(parameters) if parameters else None,
            template_id=template_id,
        )
        return self._r.call(Call("POST", self._PATH, json=fields))

    def list(
        self, *, q: str | None = None, model_id: str | None = None, limit: int | None = None
    ) -> P:
        """Your conversations (and those shared with you), newest activity first."""
        params = {"q": q, "model_id": model_id, "limit": 50}
        return self._r.pages(
            PageSpec(Call("GET", self._PATH, params=params), _conversation_items, limit)
        )

    def get(self, conversation_id: str) -> R:
        return self._r.call(Call("GET", f"{self._PATH}/{_seg(conversation_id)}"))

    def update(self, conversation_id: str, **fields: Any) -> R:
        path = f"{self._PATH}/{_seg(conversation_id)}"
        return self._r.call(Call("PATCH", path, json=fields))

    def delete(self, conversation_id: str) -> R:
        return self._r.call(Call("DELETE", f"{self._PATH}/{_seg(conversation_id)}"))

    def restore(self, conversation_id: str) -> R:
        return self._r.call(Call("POST", f"{self._PATH}/{_seg(conversation_id)}/restore"))

    def export(self, conversation_id: str, *, format: str = "json") -> R:
        path = f"{self._PATH}/{_seg(conversation_id)}/export"
        if format == "json":
            return self._r.call(Call("GET", path, params={"format": format}))
        return self._r.call(Call("GET", path, params={"format": format}, expect="text"))

    def send(
        self,
        conversation_id: str,
        content: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> R:
        """Send a turn and wait for the whole answer: `{"user_message", "message"}`."""
        fields = self._turn(content, parameters, parent_id)
        fields["stream"] = False
        path = f"{self._PATH}/{_seg(conversation_id)}/messages"
        return self._r.call(Call("POST", path, json=fields, timeout=600.0))

    def stream(
        self,
        conversation_id: str,
        content: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
    ) -> S:
        """Send a turn; events `start`, `delta` ({"text"}) per piece, then `done` (the final
        message) or `error`. A dropped connection re-attaches where it left off."""
        fields = self._turn(content, parameters, parent_id)
        fields["stream"] = True
        path = f"{self._PATH}/{_seg(conversation_id)}/messages"
        return self._answer_stream(conversation_id, Call("POST", path, json=fields))

    def attach(
        self, conversation_id: str, message_id: str, *, last_event_id: str | None = None
    ) -> S:
        """Watch an answer from another process or after a disconnect (resumes after
        `last_event_id`, or from its start)."""
        call = self._watch(conversation_id, message_id, last_event_id)
        spec = StreamSpec(
            call,
            resume=lambda last: self._watch(conversation_id, message_id, last),
            terminal=frozenset({"done", "error"}),
            last_event_id=last_event_id,
        )
        return self._r.stream(spec)

    def stop(self, conversation_id: str, message_id: str) -> R:
        path = f"{self._PATH}/{_seg(conversation_id)}/messages/{_seg(message_id)}/stop"
        return self._r.call(Call("POST", path))

    def regenerate(
        self,
        conversation_id: str,
        message_id: str,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> R:
        """Another answer to the same turn (a sibling), whole."""
        fields = body(model=model, parameters=dict(parameters) if parameters else None)
        fields["stream"] = False
        path = f"{self._PATH}/{_seg(conversation_id)}/messages/{_seg(message_id)}/regenerate"
        return self._r.call(Call("POST", path, json=fields, timeout=600.0))

    def regenerate_stream(
        self,
        conversation_id: str,
        message_id: str,
        *,
        model: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> S:
        fields = body(model=model, parameters=dict(parameters) if parameters else None)
        fields["stream"] = True
        path = f"{self._PATH}/{_seg(conversation_id)}/messages/{_seg(message_id)}/regenerate"
        return self._answer_stream(conversation_id, Call("POST", path, json=fields))

    def feedback(
        self, conversation_id: str, message_id: str, rating: str, comment: str | None = None
    ) -> R:
        path = f"{self._PATH}/{_seg(conversation_id)}/messages/{_seg(message_id)}/feedback"
        return self._r.call(Call("PUT", path, json=body(rating=rating, comment=comment)))

    @staticmethod
    def _turn(
        content: str, parameters: Mapping[str, Any] | None, parent_id: str | None
    ) -> dict[str, Any]:
        return body(
            content=content,
            parameters=dict(parameters) if parameters else None,
            parent_id=parent_id,
        )

    def _watch(self, conversation_id: str, message_id: str, last: str | None) -> Call:
        path = f"{self._PATH}/{_seg(conversation_id)}/messages/{_seg(message_id)}/stream"
        headers = {"Last-Event-ID": last} if last else None
        return Call("GET", path, headers=headers, timeout=None)

    def _answer_stream(self, conversation_id: str, first: Call) -> S:
        # The `start` event names the answer; a dropped connection re-attaches to it.
        answer: dict[str, str] = {}

        def observe(event: Event) -> None:
            if event.event == "start":
                answer["id"] = str(event.json()["message"]["id"])

        def resume(last: str | None) -> Call:
            if "id" not in answer:
                raise RuntimeError("the answer's stream dropped before it started")
            return self._watch(conversation_id, answer["id"], last)

        spec = StreamSpec(
            first, resume=resume, terminal=frozenset({"done", "error"}), observe=observe
        )
        return self._r.stream(spec)


class Posts(_Family[R, P, S]):
    _PATH = "/api/v1/posts"

    def create(
        self, model: str, prompt: str, *, idempotency_key: str | None = None, **sampling: Any
    ) -> R:
        """A post by `model` (202, `generating`); sampling: max_tokens, temperature, seed..."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        fields = {"model": model, "prompt": prompt, **body(**sampling)}
        return self._r.call(Call("POST", self._PATH, json=fields, headers=headers))

    def get(self, post_id: str) -> R:
        return self._r.call(Call("GET", f"{self._PATH}/{_seg(post_id)}"))

    def reply(
        self,
        post_id: str,
        *,
        model: str | None = None,
        instruction: str | None = None,
        text: str | None = None,
        **sampling: Any,
    ) -> R:
        """A model's reply (`model`, optional `instruction`) or your own (`text`)."""
        fields = body(model=model, instruction=instruction, text=text, **sampling)
        path = f"{self._PATH}/{_seg(post_id)}/replies"
        return self._r.call(Call("POST", path, json=fields))

    def thread(self, post_id: str, *, limit: int | None = None) -> P:
        call = Call("GET", f"{self._PATH}/{_seg(post_id)}/thread", params={"limit": 50})
        return self._r.pages(PageSpec(call, limit=limit))

    def like(self, post_id: str) -> R:
        return self._r.call(Call("POST", f"{self._PATH}/{_seg(post_id)}/like"))

    def unlike(self, post_id: str) -> R:
        return self._r.call(Call("DELETE", f"{self._PATH}/{_seg(post_id)}/like"))

    def delete(self, post_id: str) -> R:
        return self._r.call(Call("DELETE", f"{self._PATH}/{_seg(post_id)}"))

    def rerun(self, post_id: str, *, idempotency_key: str | None = None) -> R:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        path = f"{self._PATH}/{_seg(post_id)}/rerun"
        return self._r.call(Call("POST", path, headers=headers))


class Feed(_Family[R, P, S]):
    _PATH = "/api/v1/feed"

    def _listing(self, path: str, limit: int | None) -> P:
        return self._r.pages(PageSpec(Call("GET", path, params={"limit": 50}), limit=limit))

    def home(self, *, limit: int | None = None) -> P:
        return self._listing(f"{self._PATH}/home", limit)

    def public(self, *, limit: int | None = None) -> P:
        return self._listing(f"{self._PATH}/public", limit)

    def trending(self, *, limit: int | None = None) -> P:
        return self._listing(f"{self._PATH}/trending", limit)

    def model(self, model_id: str, *, limit: int | None = None) -> P:
        return self._listing(f"{self._PATH}/models/{_seg(model_id)}", limit)

    def user(self, user_id: str, *, limit: int | None = None) -> P:
        return self._listing(f"{self._PATH}/users/{_seg(user_id)}", limit)

    def live(self, *, last_event_id: str | None = None) -> S:
        """The live feed, forever: `ready`, `post` and `counts` events. The server ends each
        connection after a while; the iterator reconnects with Last-Event-ID, missing
        nothing."""
        return self._r.stream(_live(f"{self._PATH}/stream", last_event_id))


def _live(path: str, last_event_id: str | None) -> StreamSpec:
    def call(last: str | None) -> Call:
        return Call("GET", path, headers={"Last-Event-ID": last} if last else None, timeout=None)

    return StreamSpec(
        call(last_event_id), resume=call, reconnect_on_end=True, last_event_id=last_event_id
    )


class Notifications(_Family[R, P, S]):
    _PATH = "/api/v1/notifications"

    def list(self, *, unread: bool | None = None, limit: int | None = None) -> P:
        params = {"unread": None if unread is None else str(unread).lower(), "limit": 50}
        return self._r.pages(PageSpec(Call("GET", self._PATH, params=params), limit=limit))

    def unread_count(self) -> R:
        return self._r.call(Call("GET", f"{self._PATH}/unread-count"))

    def read(self, notification_id: str) -> R:
        return self._r.call(Call("POST", f"{self._PATH}/{_seg(notification_id)}/read"))

    def read_all(self) -> R:
        return self._r.call(Call("POST", f"{self._PATH}/read-all"))

    def preferences(self) -> R:
        return self._r.call(Call("GET", f"{self._PATH}/preferences"))

    def set_preferences(self, muted: Sequence[str]) -> R:
        path = f"{self._PATH}/preferences"
        return self._r.call(Call("PUT", path, json={"muted": list(muted)}))

    def live(self, *, last_event_id: str | None = None) -> S:
        """`notification` events as they come, resuming after `last_event_id`."""
        return self._r.stream(_live(f"{self._PATH}/stream", last_event_id))


class FineTunes(_Family[R, P, S]):
    def create(
        self,
        model_id: str,
        training_file: str | Path,
        *,
        validation_file: str | Path | None = None,
        **hyperparameters: Any,
    ) -> R:
        """Fine-tune the model's active version: method, epochs, learning_rate, batch_size,
        max_seq_length, seed, lora_rank, lora_alpha (form fields)."""
        files = [("training_file", _file_part(training_file))]
        if validation_file is not None:
            files.append(("validation_file", _file_part(validation_file)))
        data = {key: str(value) for key, value in hyperparameters.items() if value is not None}
        path = f"/api/v1/models/{_seg(model_id)}/fine-tunes"
        return self._r.call(Call("POST", path, files=files, data=data, timeout=300.0))

    def get(self, fine_tune_id: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/fine-tunes/{_seg(fine_tune_id)}"))

    def list(self, *, model_id: str | None = None, limit: int | None = None) -> P:
        path = f"/api/v1/models/{_seg(model_id)}/fine-tunes" if model_id else "/api/v1/fine-tunes"
        return self._r.pages(PageSpec(Call("GET", path, params={"limit": 50}), limit=limit))

    def cancel(self, fine_tune_id: str) -> R:
        return self._r.call(Call("POST", f"/api/v1/fine-tunes/{_seg(fine_tune_id)}/cancel"))

    def events(self, fine_tune_id: str, *, last_event_id: str | None = None) -> S:
        """`status` and `progress` events until the job's final state (replayed from the
        start without `last_event_id`)."""
        return self._r.stream(
            _finite(f"/api/v1/fine-tunes/{_seg(fine_tune_id)}/events", last_event_id)
        )


def _finite(path: str, last_event_id: str | None) -> StreamSpec:
    """A stream the server ends when its job is over; resumed only after a dropped link."""

    def call(last: str | None) -> Call:
        return Call("GET", path, headers={"Last-Event-ID": last} if last else None, timeout=None)

    return StreamSpec(call(last_event_id), resume=call, last_event_id=last_event_id)


def _file_part(path: str | Path) -> tuple[str, bytes, str]:
    source = Path(path)
    return (source.name, source.read_bytes(), "application/octet-stream")


class Evaluations(_Family[R, P, S]):
    def prompt_sets(self) -> R:
        return self._r.call(Call("GET", "/api/v1/evaluations/prompt-sets"))

    def create(
        self,
        model: str,
        *,
        prompt_sets: Sequence[str] | None = None,
        custom_sets: Sequence[Mapping[str, Any]] | None = None,
        sampling: Mapping[str, Any] | None = None,
        repeats: int | None = None,
        heldout_text: str | None = None,
        version: int | None = None,
    ) -> R:
        """Evaluate a model (by id or `<owner>/<slug>`); 202 with the queued evaluation."""
        fields = body(
            prompt_sets=list(prompt_sets) if prompt_sets is not None else None,
            custom_sets=[dict(s) for s in custom_sets] if custom_sets else None,
            sampling=dict(sampling) if sampling else None,
            repeats=repeats,
            heldout_text=heldout_text,
            version=version,
        )
        if "/" in model:
            path = f"/api/v1/models/by-ref/{_ref_path(model)}/evaluations"
        else:
            path = f"/api/v1/models/{_seg(model)}/evaluations"
        return self._r.call(Call("POST", path, json=fields))

    def get(self, evaluation_id: str) -> R:
        return self._r.call(Call("GET", f"/api/v1/evaluations/{_seg(evaluation_id)}"))

    def list(self, *, model_id: str | None = None, limit: int | None = None) -> P:
        call = Call("GET", "/api/v1/evaluations", params={"model_id": model_id, "limit": 50})
        return self._r.pages(PageSpec(call, limit=limit))

    def events(self, evaluation_id: str, *, last_event_id: str | None = None) -> S:
        """`progress` events, then `done`."""
        return self._r.stream(
            _finite(f"/api/v1/evaluations/{_seg(evaluation_id)}/events", last_event_id)
        )

    def compare(self, a: str, b: str) -> R:
        return self._r.call(Call("GET", "/api/v1/evaluations/compare", params={"a": a, "b": b}))

    def export(
        self,
        evaluation_id: str,
        *,
        format: str = "json",
        table: str | None = None,
    ) -> R:
        path = f"/api/v1/evaluations/{_seg(evaluation_id)}/export"
        return self._r.call(
            Call(
                "GET",
                path,
                params={"format": format, "table": table},
                expect="json" if format == "json" else "text",
            )
        )


class Usage(_Family[R, P, S]):
    def ledger(
        self,
        *,
        model_id: str | None = None,
        since: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> P:
        """Your usage rows, newest first (`page()` gives one page with its totals)."""
        params = {"model_id": model_id, "since": since, "user_id": user_id, "limit": 100}
        return self._r.pages(PageSpec(Call("GET", "/api/v1/usage", params=params), limit=limit))

    def page(self, *, model_id: str | None = None, limit: int = 50) -> R:
        """One page of the ledger with `totals`."""
        params = {"model_id": model_id, "limit": limit}
        return self._r.call(Call("GET", "/api/v1/usage", params=params))

    def quota(self) -> R:
        return self._r.call(Call("GET", "/api/v1/usage/quota"))


class Families(Generic[R, P, S]):
    """Every family, as attributes of a client."""

    def _mount(self, runner: Runner[R, P, S]) -> None:
        self.auth = Auth(runner)
        self.users = Users(runner)
        self.api_keys = ApiKeys(runner)
        self.models = Models(runner)
        self.versions = Versions(runner)
        self.upload_sessions = UploadSessions(runner)
        self.providers = Providers(runner)
        self.conversations = Conversations(runner)
        self.posts = Posts(runner)
        self.feed = Feed(runner)
        self.notifications = Notifications(runner)
        self.fine_tunes = FineTunes(runner)
        self.evaluations = Evaluations(runner)
        self.usage = Usage(runner)
