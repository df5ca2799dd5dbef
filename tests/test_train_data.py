"""Training data: the completion-only label mask, EOS, padding, too-long handling, batches."""

from __future__ import annotations

import pytest

from engine.data.types import Example
from engine.decode.prompt import render_prompt, render_target
from engine.train.config import load_config
from engine.train.data import (
    IGNORE,
    DataError,
    collate,
    encode_example,
    epoch_batches,
    length_report,
    prepare_data,
)


@pytest.fixture(scope="module")
def tok(tiny_model_path):
    from engine.models.load import load_tokenizer

    return load_tokenizer("tiny")


def _cfg(sample_dir, *more):
    return load_config(None, ["model=tiny", f"train_data={sample_dir / 'train.jsonl'}", *more])


def test_label_mask_prompt_masked_eos_labelled_pads_masked(tok):
    short = Example("a", "contact_card", "Call Ann at 555-0100.", {"name": "Ann"})
    long = Example(
        "b",
        "contact_card",
        "Write to Bob Smith, bob@example.com.",
        {"name": "Bob Smith", "email": "bob@example.com"},
    )
    items = [encode_example(tok, e) for e in (short, long)]
    prompt_ids = tok(render_prompt(short.prompt, short.schema_id))["input_ids"]
    target_ids = tok(render_target(short.expected), add_special_tokens=False)["input_ids"]
    assert items[0].input_ids == prompt_ids + target_ids + [tok.eos_token_id]
    assert items[0].n_prompt == len(prompt_ids)

    batch = collate(items, tok.pad_token_id)
    assert tok.pad_token_id != tok.eos_token_id
    for row, item in enumerate(items):
        labels = batch["labels"][row].tolist()
        n = len(item)
        assert labels[: item.n_prompt] == [IGNORE] * item.n_prompt  # prompt masked
        assert labels[item.n_prompt : n] == item.input_ids[item.n_prompt :]  # target trained
        assert labels[n - 1] == tok.eos_token_id  # EOS is trained
        assert labels[n:] == [IGNORE] * (len(labels) - n)  # pads masked
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (len(labels) - n)
    # Dynamic padding: to the longest item of the batch, no further.
    assert batch["input_ids"].shape[1] == max(len(i) for i in items)
    # The flat target positions select exactly the labelled next tokens.
    shifted = batch["labels"][:, 1:].reshape(-1)
    assert batch["targets"].tolist() == shifted[shifted != IGNORE].tolist()
    assert batch["n_target"] == sum(i.n_target for i in items)


def test_too_long_examples_are_reported_and_dropped_never_cut(sample_dir, tok):
    full = prepare_data(_cfg(sample_dir, "val_fraction=0"), tok)
    lengths = sorted(len(e) for e in full.train)
    limit = lengths[len(lengths) // 2]  # about half the examples are longer
    cfg = _cfg(sample_dir, f"max_seq_len={limit}", "val_fraction=0")
    report = length_report(cfg, tok)
    expected_long = {e.id for e in full.train if len(e) > limit}
    assert report.n_too_long == len(expected_long) > 0
    assert set(report.too_long_ids) == expected_long
    assert str(report.n_too_long) in report.message() and report.too_long_ids[0] in report.message()

    data = prepare_data(cfg, tok)
    by_id = {e.id: e for e in full.train}
    assert {e.id for e in data.train} == set(by_id) - expected_long
    for e in data.train:  # kept examples are whole: same ids as before, EOS last
        assert e.input_ids == by_id[e.id].input_ids and e.input_ids[-1] == tok.eos_token_id

    with pytest.raises(DataError, match="longer than max_seq_len"):
        prepare_data(_cfg(sample_dir, f"max_seq_len={limit}", "too_long=error"), tok)


def test_validation_slice_is_held_out(sample_dir, tok):
    data = prepare_data(_cfg(sample_dir, "val_fraction=0.1"), tok)
    train_ids, val_ids = {e.id for e in data.train}, {e.id for e in data.val}
    assert val_ids and not train_ids & val_ids
    assert len(val_ids) == round(0.1 * (len(train_ids) + len(val_ids)))
    assert {e.id for e in prepare_data(_cfg(sample_dir, "val_fraction=0.1"), tok).val} == val_ids


def test_prompt_template_is_used_and_val_examples_are_kept_for_decoding(sample_dir, tok):
    data = prepare_data(
        _cfg(sample_dir, "val_fraction=0.1", "prompt_template=schema-in-prompt"), tok
    )
    assert [e.id for e in data.val_examples] == [e.id for e in data.val]
    ex = data.val_examples[0]
    schema = data.registry.get(ex.schema_id)
    assert schema is not None
    prompt = render_prompt(ex.prompt, ex.schema_id, "schema-in-prompt", schema=schema)
    assert '"properties"' in prompt  # the compact schema is in the prompt
    n_prompt = len(tok(prompt)["input_ids"])
    assert data.val[0].n_prompt == n_prompt
    assert data.val[0].input_ids[:n_prompt] == tok(prompt)["input_ids"]

    edge = encode_example(tok, ex, "edgejson")
    target = tok(render_target(ex.expected, "edgejson"), add_special_tokens=False)["input_ids"]
    assert render_target(ex.expected, "edgejson").startswith(" {")
    assert edge.input_ids[edge.n_prompt :] == target + [tok.eos_token_id]
    with pytest.raises(DataError, match="chat template"):
        prepare_data(_cfg(sample_dir, "prompt_template=chat"), tok)  # tiny has no chat template


def test_length_grouped_batches_cover_each_example_once():
    lengths = [(i * 37) % 101 + 1 for i in range(203)]
    batches = epoch_batches(lengths, 8, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(203))
    assert epoch_batches(lengths, 8, seed=1, epoch=0) == batches  # deterministic
    assert epoch_batches(lengths, 8, seed=1, epoch=1) != batches  # reshuffled per epoch
    # Grouping pads far less than random batches would.
    waste = sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)
    assert waste < 0.1 * sum(lengths)
