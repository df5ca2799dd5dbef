"""Decoding: the generation loop, the schema grammar, prompt templates, loop guards."""
