"""Who is calling: API keys (stored as hashed Secrets), HS256 JWTs, the admin key, tenant namespaces."""
