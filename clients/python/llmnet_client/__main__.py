"""`python -m llmnet_client`: the user commands without the platform installed."""

import sys

from llmnet_client.cli import main

sys.exit(main())
