"""The same decoding on a CUDA GPU as on the CPU (skipped without one)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_greedy_decoding_on_the_gpu_matches_the_cpu(sample_dir, tiny_model_path):
    import torch

    from engine.data.load import SchemaRegistry, load_examples
    from engine.decode.generate import DecodingConfig, Generator

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    registry = SchemaRegistry.from_dir(sample_dir / "schemas")
    examples = load_examples(sample_dir / "test.jsonl", registry).examples[:3]
    items = [(ex.prompt, ex.schema_id, registry.get(ex.schema_id)) for ex in examples]
    cfg = DecodingConfig(max_new_tokens=24)
    texts = {}
    for device in ("cpu", "cuda"):
        gen = Generator("tiny", device=device, dtype=torch.float32)
        assert gen.device.type == device
        texts[device] = [g.text for g in gen.generate(items, cfg, constrained=True)]
    assert texts["cuda"] == texts["cpu"]
