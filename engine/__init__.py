"""SchemaLab's headless core: data, validation, models, training, decoding, evaluation, run log.

Nothing here imports textual or tui; heavy libraries (torch, transformers, peft) are imported
inside the functions that need them.
"""

__version__ = "0.1.0"
