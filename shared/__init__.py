"""llmnet's shared library: the cross-cutting pieces every service imports once.

settings (CommonSettings), errors (the error hierarchy and its JSON shape), db (engine,
sessions, one transaction per request), redis_client, events (outbox + Redis Streams),
jobs (arq wiring), auth (JWT, passwords, API keys, forwarded identity), storage,
pagination, observability (request ids, logs, metrics), app (the service app factory),
health (healthz/readyz/metrics routes).
"""
