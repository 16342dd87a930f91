"""Pydantic models of the native API; the OpenAPI document is generated from them."""
