"""gateway: the public entry. Authenticates, rate-limits and routes to the services."""
