"""The `llmnet` user commands, on the Python client.

    llmnet login                      store a login (or an API key) in the config dir, 0600
    llmnet whoami                     who the stored credential is
    llmnet models list|create|show    the catalog; `models upload PATH --model M` resumable
    llmnet versions list MODEL        a model's versions
    llmnet chat MODEL                 an interactive chat (/stop, /regenerate, /model, /quit)
    llmnet post MODEL PROMPT          a post by a model
    llmnet feed [--follow]            your home timeline, or the live feed
    llmnet fine-tune create|watch     fine-tunes with a live progress bar and loss
    llmnet eval run|show              evaluation reports
    llmnet keys create|list|revoke    API keys

Every read command takes --json. The platform is `--url`, else LLMNET_URL, else the URL
stored at login, else http://127.0.0.1:8000; LLMNET_API_KEY overrides the stored credential.

Exit codes: 0 done, 1 other failure (server, network), 2 usage (bad arguments, missing
files), 3 authentication or permission (not logged in, expired or revoked key), 4 not found,
5 conflict or invalid input (409, 400, 413, 422), 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys

from llmnet_client.cli.commands import USER_COMMANDS, add_user_commands, run_command

__all__ = ["USER_COMMANDS", "add_user_commands", "main", "run_command"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="llmnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_user_commands(parser.add_subparsers(dest="command", required=True))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
