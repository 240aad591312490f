"""The user commands: argument parsing, one handler per command, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from llmnet_client._core import TokenPair, default_base_url
from llmnet_client._sync import Client
from llmnet_client.cli import config
from llmnet_client.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ValidationError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_INTERRUPTED = 130

USER_COMMANDS = frozenset(
    {
        "login",
        "logout",
        "whoami",
        "models",
        "versions",
        "chat",
        "post",
        "feed",
        "fine-tune",
        "eval",
        "keys",
    }
)

Handler = Callable[[argparse.Namespace], int]
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(Exception):
    """A command used wrongly (exit 2)."""


# -- the client the commands use ---------------------------------------------------------------


def make_client(args: argparse.Namespace) -> Client:
    stored = config.load_credentials()
    url = getattr(args, "url", None) or os.environ.get("LLMNET_URL") or stored.get("url")
    url = url or default_base_url()
    env_key = os.environ.get("LLMNET_API_KEY")
    if env_key:
        return Client(url, api_key=env_key)

    def keep(tokens: TokenPair) -> None:
        config.save_credentials(
            {
                **config.load_credentials(),
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
            }
        )

    return Client(
        url,
        api_key=stored.get("api_key"),
        access_token=stored.get("access_token"),
        refresh_token=stored.get("refresh_token"),
        on_tokens=keep,
    )


def _model(client: Client, model: str) -> Any:
    """A model named by id or `<owner>/<slug>`."""
    return client.models.get(model)


def emit(args: argparse.Namespace, data: Any, render: Callable[[Any], None]) -> int:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, default=str))
    else:
        render(data)
    return EXIT_OK


def _table(columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(*columns, show_edge=False, pad_edge=False)
    for row in rows:
        table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
    out.print(table)


# -- auth ----------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get("LLMNET_URL") or default_base_url()).rstrip("/")
    api_key = args.api_key
    if args.api_key_stdin:
        api_key = sys.stdin.readline().strip()
    if api_key is None and not args.username and os.environ.get("LLMNET_API_KEY"):
        api_key = os.environ["LLMNET_API_KEY"]
    with Client(url, api_key=api_key or None, access_token=None) as client:
        if api_key:
            client.credentials.api_key = api_key
            me = client.users.me()
            path = config.save_credentials({"url": url, "api_key": api_key})
        else:
            username = args.username or input("Username: ")
            password = (
                sys.stdin.readline().rstrip("\n")
                if args.password_stdin
                else getpass.getpass("Password: ")
            )
            client.credentials.api_key = None
            client.auth.login(username, password)
            me = client.users.me()
            path = config.save_credentials(
                {
                    "url": url,
                    "access_token": client.credentials.access_token,
                    "refresh_token": client.credentials.refresh_token,
                }
            )
    err.print(f"Logged in to {url} as [bold]{me['username']}[/bold] (saved in {path}).")
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    stored = config.load_credentials()
    if stored.get("refresh_token"):
        with make_client(args) as client, contextlib.suppress(APIError, APIConnectionError):
            client.auth.logout()  # the local credential goes anyway
    removed = config.forget_credentials()
    err.print("Logged out." if removed else "You were not logged in.")
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        if client.credentials.bearer is None:
            raise AuthenticationError(
                "Not logged in.", status_code=401, code="authentication_required"
            )
        me = client.users.me()

    def render(user: Any) -> None:
        out.print(f"{user['username']} ({user.get('email', '')}), role {user.get('role', 'user')}")

    return emit(args, me, render)


# -- models and versions --------------------------------------------------------------------


def _model_rows(models: Iterable[Any]) -> list[list[Any]]:
    return [
        [m["ref"], m["name"], m["visibility"], m["status"], m.get("likes_count", 0), m["id"]]
        for m in models
    ]


def cmd_models_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        owner = args.owner
        if args.mine:
            owner = client.users.me()["username"]
        models = list(
            client.models.list(
                q=args.q, owner=owner, tag=args.tag, sort=args.sort, limit=args.limit
            )
        )
    return emit(
        args,
        models,
        lambda rows: _table(
            ["model", "name", "visibility", "status", "likes", "id"], _model_rows(rows)
        ),
    )


def cmd_models_create(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {"visibility": args.visibility}
    for name in ("description", "license", "system_prompt", "slug"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = value
    if args.tag:
        fields["tags"] = args.tag
    with make_client(args) as client:
        model = client.models.create(args.name, **fields)
    return emit(args, model, lambda m: out.print(f"Created {m['ref']} ({m['id']})"))


def cmd_models_show(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        model = _model(client, args.model)

    def render(m: Any) -> None:
        out.print(f"[bold]{m['ref']}[/bold]  {escape(m['name'])}")
        if m.get("description"):
            out.print(escape(m["description"]))
        active = m.get("active_version") or {}
        out.print(
            f"visibility {m['visibility']}, status {m['status']}, source {m['source']}, "
            f"likes {m.get('likes_count', 0)}, active version {active.get('number', '-')}"
        )
        out.print(f"id {m['id']}")

    return emit(args, model, render)


def _progress_bar(transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
    )


def cmd_models_upload(args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser()
    if not path.exists():
        raise UsageError(f"{path} does not exist")
    with make_client(args) as client:
        model = _model(client, args.model)
        model_id = str(model["id"])
        previous = config.upload_session(path, model_id)
        if previous:
            err.print(f"Resuming the upload of {path} (session {previous}).")
        with _progress_bar() as progress:
            task = progress.add_task(f"{path.name} → {model['ref']}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            version = client.upload(
                model_id,
                path,
                session_id=previous,
                part_size=args.part_size,
                parallel=args.parallel,
                progress=advance,
                on_session=lambda session_id: config.remember_upload(path, model_id, session_id),
            )
        config.forget_upload(path, model_id)
        if args.wait:
            err.print("Validating…")
            version = client.wait_for_version(model_id, str(version["id"]))
    if version["status"] == "failed":
        err.print(
            f"[red]Version {version['number']} failed:[/red] {escape(str(version.get('error')))}"
        )
        emit(args, version, lambda v: None)
        return EXIT_CONFLICT

    def render(v: Any) -> None:
        out.print(f"Uploaded version {v['number']} of {model['ref']}: {v['status']} ({v['id']})")

    return emit(args, version, render)


def cmd_versions_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        model = _model(client, args.model)
        versions = client.versions.list(str(model["id"]))
    rows = [
        [
            v["number"],
            v["status"],
            v.get("format"),
            v.get("total_size"),
            "yes" if v.get("is_active") else "",
            v["id"],
        ]
        for v in versions
    ]
    return emit(
        args, versions, lambda _: _table(["#", "status", "format", "bytes", "active", "id"], rows)
    )


# -- posts and the feed ---------------------------------------------------------------------


def _print_post(post: Any) -> None:
    author = post["author"].get("model_ref") or post["author"]["owner_username"]
    stamp = post.get("published_at") or post.get("created_at")
    out.print(f"[bold]{author}[/bold]  [dim]{stamp}  {post['id']}[/dim]")
    if post.get("prompt"):
        out.print(f"[dim]> {escape(post['prompt'])}[/dim]")
    out.print(escape(post.get("content") or f"({post['status']})"))
    out.print(f"[dim]♥ {post.get('like_count', 0)}  ↩ {post.get('reply_count', 0)}[/dim]\n")


def _print_posts(posts: list[Any]) -> None:
    for post in reversed(posts):
        _print_post(post)


def cmd_post(args: argparse.Namespace) -> int:
    sampling = {
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
    }
    with make_client(args) as client:
        post = client.posts.create(args.model, args.prompt, **sampling)
        if args.wait:
            deadline = time.monotonic() + args.timeout
            with err.status("The model is writing…"):
                while post["status"] == "generating" and time.monotonic() < deadline:
                    time.sleep(0.5)
                    post = client.posts.get(post["id"])
    if post["status"] == "failed":
        err.print(f"[red]The post failed:[/red] {escape(str(post.get('failure_reason')))}")
        emit(args, post, lambda p: None)
        return EXIT_ERROR
    return emit(args, post, _print_post)


def cmd_feed(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        if not args.follow:
            listing = client.feed.public if args.public else client.feed.home
            posts = list(listing(limit=args.limit))
            return emit(args, posts, _print_posts)
        err.print("Following the live feed (Ctrl-C to stop)…")
        for event in client.feed.live(last_event_id=args.last_event_id):
            if args.json:
                print(
                    json.dumps({"event": event.event, "id": event.id, "data": event.json()}),
                    flush=True,
                )
            elif event.event == "post":
                _print_post(event.json())
            elif event.event == "counts":
                data = event.json()
                out.print(
                    f"[dim]{data['post_id']}: ♥ {data['like_count']} ↩ {data['reply_count']}[/dim]"
                )
    return EXIT_OK


# -- fine-tunes and evaluations -------------------------------------------------------------


def cmd_fine_tune_create(args: argparse.Namespace) -> int:
    hyper = {
        "method": args.method,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "max_seq_length": args.max_seq_length,
        "seed": args.seed,
    }
    for name in ("training_file", "validation_file"):
        value = getattr(args, name)
        if value is not None and not Path(value).is_file():
            raise UsageError(f"{value} is not a file")
    with make_client(args) as client:
        model = _model(client, args.model)
        job = client.fine_tunes.create(
            str(model["id"]),
            args.training_file,
            validation_file=args.validation_file,
            **hyper,
        )
        if not args.watch:
            return emit(
                args,
                job,
                lambda j: out.print(f"Fine-tune {j['id']} {j['status']} on {model['ref']}"),
            )
        err.print(f"Fine-tune {job['id']} on {model['ref']}")
        return _watch_fine_tune(client, args, str(job["id"]))


def cmd_fine_tune_watch(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        return _watch_fine_tune(client, args, args.fine_tune)


def _watch_fine_tune(client: Client, args: argparse.Namespace, job_id: str) -> int:
    final: Any = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
        console=err,
        disable=args.json,
    ) as progress:
        task = progress.add_task("queued", total=None, loss="")
        for event in client.fine_tunes.events(job_id):
            data = event.json()
            if args.json:
                print(json.dumps({"event": event.event, "id": event.id, "data": data}), flush=True)
            report = data.get("progress") or {}
            loss = ""
            if report.get("train_loss") is not None:
                loss = f"loss {report['train_loss']:.4f}"
            if report.get("validation_loss") is not None:
                loss += f"  val {report['validation_loss']:.4f}"
            progress.update(
                task,
                description=f"{data['status']} epoch {report.get('epoch', '-')}",
                completed=report.get("step", 0),
                total=report.get("total_steps") or None,
                loss=loss,
            )
            final = data
    job = client.fine_tunes.get(job_id)
    if not args.json:
        out.print(f"Fine-tune {job_id}: {job['status']}")
        if job.get("result_version_id"):
            out.print(f"new version {job['result_version_id']}")
        if job.get("error"):
            out.print(f"[red]{escape(job['error'])}[/red]")
    del final
    return EXIT_OK if job["status"] == "succeeded" else EXIT_ERROR


def cmd_eval_run(args: argparse.Namespace) -> int:
    sampling = {
        key: value
        for key, value in (("max_tokens", args.max_tokens), ("temperature", args.temperature))
        if value is not None
    }
    heldout = Path(args.heldout_file).read_text(encoding="utf-8") if args.heldout_file else None
    with make_client(args) as client:
        evaluation = client.evaluations.create(
            args.model,
            prompt_sets=args.prompt_set,
            sampling=sampling or None,
            repeats=args.repeats,
            heldout_text=heldout,
        )
        if not args.watch:
            return emit(
                args, evaluation, lambda e: out.print(f"Evaluation {e['id']} {e['status']}")
            )
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            console=err,
            disable=args.json,
        ) as progress:
            task = progress.add_task("queued", total=None)
            for event in client.evaluations.events(str(evaluation["id"])):
                data = event.json() or {}
                progress.update(
                    task,
                    description=str(data.get("stage") or data.get("status") or event.event),
                    completed=data.get("done", 0),
                    total=data.get("total") or None,
                )
        evaluation = client.evaluations.get(str(evaluation["id"]))
    return emit(args, evaluation, _print_evaluation)


def cmd_eval_show(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        evaluation = client.evaluations.get(args.evaluation)
    return emit(args, evaluation, _print_evaluation)


def _print_evaluation(evaluation: Any) -> None:
    out.print(
        f"[bold]Evaluation {evaluation['id']}[/bold] of {evaluation['model_ref']}: "
        f"{evaluation['status']}"
    )
    if evaluation.get("error"):
        out.print(f"[red]{escape(evaluation['error'])}[/red]")
    report = evaluation.get("report") or {}
    rows = []
    for section, values in report.items():
        if section == "responses" or not isinstance(values, dict):
            continue
        for metric, value in values.items():
            if isinstance(value, int | float | str) or value is None:
                rows.append([section, metric, value])
    if rows:
        _table(["section", "metric", "value"], rows)


# -- keys --------------------------------------------------------------------------------------


def cmd_keys_create(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        key = client.api_keys.create(args.name, scopes=args.scope, expires_at=args.expires_at)

    def render(k: Any) -> None:
        out.print(f"Created key {escape(k['name'])} ({k['id']}), scopes {', '.join(k['scopes'])}.")
        out.print("The secret is shown once, store it now:")
        print(k["key"])

    return emit(args, key, render)


def cmd_keys_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        keys = client.api_keys.list()
    rows = [
        [
            k["name"],
            k["key_prefix"],
            ",".join(k["scopes"]),
            k.get("last_used_at"),
            "revoked" if k.get("revoked_at") else "active",
            k["id"],
        ]
        for k in keys
    ]
    return emit(
        args, keys, lambda _: _table(["name", "prefix", "scopes", "last used", "state", "id"], rows)
    )


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.api_keys.revoke(args.key)
    err.print(f"Revoked key {args.key}.")
    return EXIT_OK


def cmd_chat(args: argparse.Namespace) -> int:
    from llmnet_client.cli.chat import run_chat

    with make_client(args) as client:
        return run_chat(client, args)


# -- parsing -------------------------------------------------------------------------------


def _common(json_output: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--url", help="the platform's gateway (default: LLMNET_URL or login's)")
    if json_output:
        parent.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parent


def add_user_commands(commands: Any) -> None:
    """Add the user commands to an argparse sub-command set."""
    read, write = _common(True), _common(False)

    login = commands.add_parser("login", parents=[write], help="log in and store the credential")
    login.add_argument("--username", "-u")
    login.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    login.add_argument("--api-key", help="store this API key instead of logging in")
    login.add_argument("--api-key-stdin", action="store_true", help="read an API key from stdin")
    login.set_defaults(handler=cmd_login)
    commands.add_parser(
        "logout", parents=[write], help="forget the stored credential"
    ).set_defaults(handler=cmd_logout)
    commands.add_parser("whoami", parents=[read], help="the logged-in user").set_defaults(
        handler=cmd_whoami
    )

    models = commands.add_parser("models", help="list, create, show and upload models")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    listing = model_commands.add_parser("list", parents=[read], help="search the catalog")
    listing.add_argument("--q", help="text in name, description or tags")
    listing.add_argument("--owner")
    listing.add_argument("--mine", action="store_true", help="only your models")
    listing.add_argument("--tag")
    listing.add_argument(
        "--sort", choices=["recent", "trending", "most_used", "most_liked"], default=None
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=cmd_models_list)
    create = model_commands.add_parser("create", parents=[read], help="create a model")
    create.add_argument("name")
    create.add_argument("--slug")
    create.add_argument("--description")
    create.add_argument("--visibility", choices=["public", "unlisted", "private"], default="public")
    create.add_argument("--license")
    create.add_argument("--system-prompt")
    create.add_argument("--tag", action="append")
    create.set_defaults(handler=cmd_models_create)
    show = model_commands.add_parser("show", parents=[read], help="a model by id or owner/slug")
    show.add_argument("model")
    show.set_defaults(handler=cmd_models_show)
    upload = model_commands.add_parser(
        "upload",
        parents=[read],
        help="upload a folder, archive or GGUF as a new version (Ctrl-C, then again: resumes)",
    )
    upload.add_argument("path")
    upload.add_argument("--model", "-m", required=True, help="model id or owner/slug")
    upload.add_argument("--parallel", type=int, default=4, help="parts in flight (default 4)")
    upload.add_argument("--part-size", type=int, default=None, help="bytes per part")
    upload.add_argument("--wait", action="store_true", help="wait for validation to finish")
    upload.set_defaults(handler=cmd_models_upload)

    versions = commands.add_parser("versions", help="a model's versions")
    version_commands = versions.add_subparsers(dest="versions_command", required=True)
    vlist = version_commands.add_parser("list", parents=[read], help="a model's versions")
    vlist.add_argument("model")
    vlist.set_defaults(handler=cmd_versions_list)

    chat = commands.add_parser("chat", parents=[write], help="chat with a model")
    chat.add_argument("model", help="owner/slug")
    chat.add_argument("--system", help="a system prompt for this conversation")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--title")
    chat.set_defaults(handler=cmd_chat)

    post = commands.add_parser("post", parents=[read], help="have a model write a post")
    post.add_argument("model", help="owner/slug")
    post.add_argument("prompt")
    post.add_argument("--max-tokens", type=int)
    post.add_argument("--temperature", type=float)
    post.add_argument("--seed", type=int)
    post.add_argument(
        "--no-wait", dest="wait", action="store_false", help="return while it is generating"
    )
    post.add_argument("--timeout", type=float, default=300.0)
    post.set_defaults(handler=cmd_post)

    feed = commands.add_parser("feed", parents=[read], help="your home timeline, or live")
    feed.add_argument("--follow", "-f", action="store_true", help="follow the live feed")
    feed.add_argument("--public", action="store_true", help="everything you may see")
    feed.add_argument("--limit", type=int, default=20)
    feed.add_argument("--last-event-id", help="resume the live feed after this event")
    feed.set_defaults(handler=cmd_feed)

    fine_tune = commands.add_parser("fine-tune", help="fine-tune a model, follow its progress")
    ft_commands = fine_tune.add_subparsers(dest="fine_tune_command", required=True)
    ft_create = ft_commands.add_parser("create", parents=[read], help="start a fine-tune")
    ft_create.add_argument("model")
    ft_create.add_argument("training_file")
    ft_create.add_argument("--validation-file")
    ft_create.add_argument("--method", choices=["lora", "full"])
    ft_create.add_argument("--epochs", type=int)
    ft_create.add_argument("--learning-rate", type=float)
    ft_create.add_argument("--batch-size", type=int)
    ft_create.add_argument("--max-seq-length", type=int)
    ft_create.add_argument("--seed", type=int)
    ft_create.add_argument("--watch", action="store_true", help="follow it until it ends")
    ft_create.set_defaults(handler=cmd_fine_tune_create)
    ft_watch = ft_commands.add_parser("watch", parents=[read], help="live progress and loss")
    ft_watch.add_argument("fine_tune")
    ft_watch.set_defaults(handler=cmd_fine_tune_watch)

    evaluation = commands.add_parser("eval", help="evaluation reports")
    eval_commands = evaluation.add_subparsers(dest="eval_command", required=True)
    run = eval_commands.add_parser("run", parents=[read], help="evaluate a model")
    run.add_argument("model", help="id or owner/slug")
    run.add_argument("--prompt-set", action="append", help="a built-in set (repeatable)")
    run.add_argument("--repeats", type=int)
    run.add_argument("--max-tokens", type=int)
    run.add_argument("--temperature", type=float)
    run.add_argument("--heldout-file", help="text file for perplexity")
    run.add_argument("--no-watch", dest="watch", action="store_false")
    run.set_defaults(handler=cmd_eval_run)
    show_eval = eval_commands.add_parser("show", parents=[read], help="an evaluation's report")
    show_eval.add_argument("evaluation")
    show_eval.set_defaults(handler=cmd_eval_show)

    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    kcreate = key_commands.add_parser("create", parents=[read], help="create a key (shown once)")
    kcreate.add_argument("name")
    kcreate.add_argument(
        "--scope", action="append", choices=["read", "write", "inference", "admin"]
    )
    kcreate.add_argument("--expires-at", help="ISO 8601 with timezone")
    kcreate.set_defaults(handler=cmd_keys_create)
    key_commands.add_parser("list", parents=[read], help="your keys").set_defaults(
        handler=cmd_keys_list
    )
    revoke = key_commands.add_parser("revoke", parents=[write], help="revoke a key at once")
    revoke.add_argument("key", help="the key's id")
    revoke.set_defaults(handler=cmd_keys_revoke)


def _describe(error: APIError) -> str:
    rid = f", request {error.request_id}" if error.request_id else ""
    return f"{error.detail.rstrip('. ')} ({error.code}{rid})"


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed user command; errors become a message on stderr and an exit code."""
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        err.print("\nInterrupted.")
        return EXIT_INTERRUPTED
    except UsageError as exc:
        err.print(f"llmnet: {exc}", markup=False)
        return EXIT_USAGE
    except (AuthenticationError, PermissionDenied) as exc:
        hint = (
            " Log in again with `llmnet login` (or set LLMNET_API_KEY)."
            if isinstance(exc, AuthenticationError)
            else ""
        )
        err.print(f"llmnet: authentication failed: {_describe(exc)}.{hint}", markup=False)
        return EXIT_AUTH
    except NotFound as exc:
        err.print(f"llmnet: not found: {_describe(exc)}.", markup=False)
        return EXIT_NOT_FOUND
    except (Conflict, ValidationError, BadRequest, PayloadTooLarge) as exc:
        err.print(f"llmnet: refused: {_describe(exc)}.", markup=False)
        for field in exc.fields:
            err.print(f"  {field.get('field')}: {field.get('message')}", markup=False)
        return EXIT_CONFLICT
    except APIError as exc:
        err.print(f"llmnet: {exc.status_code} {_describe(exc)}.", markup=False)
        return EXIT_ERROR
    except APIConnectionError as exc:
        err.print(f"llmnet: cannot reach the platform: {exc}", markup=False)
        return EXIT_ERROR
    except (FileNotFoundError, IsADirectoryError, ValueError) as exc:
        err.print(f"llmnet: {exc}", markup=False)
        return EXIT_USAGE
