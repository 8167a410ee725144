"""Tiny stand-ins for tests and offline smoke runs: the real architectures, shrunk, randomly initialised.

Each stand-in goes through the same code path as the real model of its family; only the weights (random)
and, for transformers, the tokenizer (built here from a few sentences, no download) differ.

- `tiny_vit` (timm): timm's DINOv2 ViT architecture with img_size 32, patch 8, width 32, depth 2, 2 heads.
- `tiny_clip` (open_clip): open_clip's ViT-B-32 `CLIP` class with a 2-layer width-32 image tower (32 px,
  patch 8) and a 2-layer width-32 text tower (context 16), using open_clip's bundled (local) tokenizer.
- `tiny_bert` (hf_text): `BertModel` (hidden 32, 2 layers, 2 heads, intermediate 64) with a character-level
  WordPiece tokenizer (lower-case letters, digits and punctuation, as word starts and `##` continuations).
- `tiny_llama` (causal_lm): `LlamaForCausalLM` (hidden 32, 2 layers, 2 heads, intermediate 64) with a
  byte-level BPE tokenizer (vocab 320) trained on a few instruction-style sentences. Like LLaMA-3 it has
  bos/eos but no pad token, so the backbone's pad handling is exercised.
- `tiny_gpt2` (causal_lm): `GPT2LMHeadModel` (width 32, 2 layers, 2 heads, 64 positions) with the same
  byte-level BPE; its attention is GPT-2's fused `c_attn` `Conv1D`, the E2E target.

`model_kwargs` in the backbone config override these sizes.
"""
from __future__ import annotations

import string
from typing import Any

TINY_VIT = {
    "timm_name": "vit_base_patch14_dinov2",
    "model_kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
}
TINY_CLIP = {
    "open_clip_name": "ViT-B-32",
    "model_kwargs": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
}
TINY_BERT_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
}
TINY_LLAMA_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}

# A few sentences in the style of the tasks (LLM-Adapters prompts, tweets) to train the tiny BPE on.
_BPE_CORPUS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction:\nPlease answer the following question with true or false.",
    "### Response:\nthe correct answer is true",
    "the correct answer is false",
    "Please choose the correct solution to the question: solution1 solution2",
    "Please choose the correct answer to the question: answer1 answer2 answer3 answer4 answer5",
    "Please choose the correct ending to complete the given sentence: ending1 ending2 ending3 ending4",
    "Please choose the correct option to fill in the blank: option1 option2",
    "I love this! What a great day :) but the weather is bad and I am sad.",
]


def char_wordpiece_tokenizer(model_max_length: int = 512):
    """A BERT-style tokenizer whose vocabulary is single characters: any lower-case ASCII text encodes.

    Layout: `[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4`, then characters, then `##` continuations;
    sequences are `[CLS] text [SEP]` like BERT's.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {token: i for i, token in enumerate(specials + chars + ["##" + c for c in chars])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )


def byte_bpe_tokenizer(vocab_size: int = 320, model_max_length: int = 512):
    """A byte-level BPE tokenizer (any text encodes), trained on `_BPE_CORPUS`; `<s>` is prepended.

    Special tokens: `<unk>=0, <s>=1, </s>=2`; no pad token (as LLaMA-3), the backbone assigns one.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_BPE_CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def tiny_bert(model_kwargs: dict[str, Any]):
    """(BertModel without pooler, tokenizer), random init."""
    from transformers import BertConfig, BertModel

    tokenizer = char_wordpiece_tokenizer()
    config = BertConfig(**{**TINY_BERT_CONFIG, "vocab_size": len(tokenizer), "pad_token_id": 0, **model_kwargs})
    return BertModel(config, add_pooling_layer=False), tokenizer


def tiny_llama(model_kwargs: dict[str, Any]):
    """(LlamaForCausalLM, tokenizer), random init."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = byte_bpe_tokenizer()
    config = LlamaConfig(
        **{
            **TINY_LLAMA_CONFIG,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            **model_kwargs,
        }
    )
    return LlamaForCausalLM(config), tokenizer


def tiny_gpt2(model_kwargs: dict[str, Any]):
    """(GPT2LMHeadModel, tokenizer), random init."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = byte_bpe_tokenizer()
    config = GPT2Config(**{"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 128, "vocab_size": len(tokenizer),
                           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                           **model_kwargs})
    return GPT2LMHeadModel(config), tokenizer
