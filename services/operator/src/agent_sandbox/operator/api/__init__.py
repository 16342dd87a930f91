"""Native REST API (``:8080``, base ``/v1``).

Routes, request/response models and the generated OpenAPI document live here; handlers are a thin
shell that authenticates, validates against the models and calls the operator's service layer.
"""
