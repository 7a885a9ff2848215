"""Plug-ins for the Rasa server itself (loaded by module path from endpoints.yml)."""
