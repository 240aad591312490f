"""accounts: users, auth tokens, API keys, profiles, follows between users, audit records."""
