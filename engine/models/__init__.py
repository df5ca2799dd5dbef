"""Models: specs and loading (Hub, local folders, GGUF, tiny), memory estimates."""
