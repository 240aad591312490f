"""Authentication and authorization pieces shared by every service.

tokens (the only place JWTs are made or read), passwords (argon2 hashing off the event
loop), api_keys (generation and hashing), identity (the identity the gateway forwards and the
dependencies services authorize with), revocation (Redis keys for bans and revoked tokens).
"""
