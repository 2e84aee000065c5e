"""Tiny random models of the families people fine-tune, each with a tokenizer and chat template that
reproduce its family's structure: its special tokens, system handling, think blocks, date headers.

The templates are written here (not copied): each keeps what matters to masking, serving and the
Ollama template (where turns start and end, what the generation prompt is, what a system message
becomes), and leaves out tools. Everything is built offline in about a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

QWEN2 = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are Qwen, a helpful assistant."
         "<|im_end|>\n' }}{% endif %}" + CHATML)

# Qwen3: the last assistant turn carries a think block (empty without reasoning); earlier ones lose theirs;
# enable_thinking=false puts an empty block in the generation prompt.
QWEN3 = (
    "{% set ns = namespace(last=-1) %}{% for m in messages %}{% if m['role'] == 'user' %}"
    "{% set ns.last = loop.index0 %}{% endif %}{% endfor %}"
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{% set content = m['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip('\n') %}{% endif %}"
    "{{ '<|im_start|>assistant\n' }}{% if loop.index0 > ns.last %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{{ content + '<|im_end|>\n' }}{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}")

# Llama 3.2: BOS from the template, an always-present system block with dates, trimmed content, <|eot_id|>.
LLAMA3 = (
    "{{ bos_token }}{% if not date_string is defined %}{% set date_string = '26 Jul 2024' %}{% endif %}"
    "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] | trim %}"
    "{% set messages = messages[1:] %}{% else %}{% set system_message = '' %}{% endif %}"
    "{{ '<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: ' + "
    "date_string + '\n\n' + system_message + '<|eot_id|>' }}"
    "{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim "
    "+ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# SmolLM3: a system header always added (metadata, reasoning mode), ChatML turns, an empty think block
# without reasoning, and {% generation %} markers whose span takes in the assistant header.
SMOLLM3 = (
    "{% set system = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{{ '<|im_start|>system\n## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: /no_think\n\n"
    "## Custom Instructions\n\n' + system + '\n\n' }}"
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ '<|im_start|>user\n' + m['content'] + '<|im_end|>\n' }}"
    "{% elif m['role'] == 'assistant' %}{% generation %}"
    "{{ '<|im_start|>assistant\n<think>\n\n</think>\n' + m['content'] + '<|im_end|>\n' }}{% endgeneration %}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n\n</think>\n' }}"
    "{% endif %}")

# Phi-4-mini: <|role|>content<|end|>, no newlines, eos after the last message without a generation prompt.
PHI = ("{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
       "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}")

# Mistral (v0.3 style): the system message goes into the last user turn; ' ' + answer + eos.
MISTRAL = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set loop_messages = messages %}{% endif %}{{ bos_token }}"
    "{% for m in loop_messages %}{% if m['role'] == 'user' %}{% if loop.last and system is defined %}"
    "{{ '[INST] ' + system + '\n\n' + m['content'] + '[/INST]' }}{% else %}{{ '[INST] ' + m['content'] + '[/INST]' }}"
    "{% endif %}{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}")

# Granite 3: roles between <|start_of_role|> and <|end_of_role|>, turns end with <|end_of_text|>.
GRANITE = (
    "{% for m in messages %}{{ '<|start_of_role|>' + m['role'] + '<|end_of_role|>' + m['content'] + "
    "'<|end_of_text|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_of_role|>assistant<|end_of_role|>' }}"
    "{% endif %}")

# Gemma 3: no system role (prepended to the first user turn), the assistant is 'model', <end_of_turn>.
GEMMA3 = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for m in loop_messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + m['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")


@dataclass(frozen=True)
class FamilySpec:
    name: str
    config: str  # the transformers config class
    template: str
    specials: tuple[str, ...]  # the first is unk; bos and eos are named below
    bos: str | None
    eos: str
    end_of_turn: str  # the token that closes an assistant turn
    extra: tuple = ()  # config keyword arguments
    # a SentencePiece-style tokenizer (byte fallback, ▁ for spaces): "prefix" puts ▁ before the text, as
    # Llama 2's and Mistral 7B's do; "gemma" does not (Gemma's normalizer only replaces spaces); "" is byte-level BPE
    sentencepiece: str = ""


FAMILIES = {
    "llama3": FamilySpec("llama3", "LlamaConfig", LLAMA3,
                         ("<unk>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                          "<|end_header_id|>", "<|eot_id|>"), "<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>",
                         (("rope_scaling", {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
                          ("rope_theta", 500000.0))),
    "qwen2": FamilySpec("qwen2", "Qwen2Config", QWEN2, ("<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"),
                        None, "<|im_end|>", "<|im_end|>"),
    "qwen3": FamilySpec("qwen3", "Qwen3Config", QWEN3,
                        ("<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"),
                        None, "<|im_end|>", "<|im_end|>", (("head_dim", 128),)),
    "smollm3": FamilySpec("smollm3", "SmolLM3Config", SMOLLM3,
                          ("<unk>", "<|begin_of_text|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"), None,
                          "<|im_end|>",
                          "<|im_end|>", (("num_hidden_layers", 4),)),  # every 4th layer has no rope
    "phi3": FamilySpec("phi3", "Phi3Config", PHI,
                       ("<unk>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
                       None, "<|endoftext|>", "<|end|>",
                       (("partial_rotary_factor", 0.75), ("original_max_position_embeddings", 256),
                        # Phi-4-mini's longrope: one factor per rotary frequency (48 of 64 dims rotate)
                        ("rope_scaling", {"rope_type": "longrope", "long_factor": [1 + i / 12 for i in range(24)],
                                          "short_factor": [1 + i / 48 for i in range(24)]}))),
    "mistral": FamilySpec("mistral", "MistralConfig", MISTRAL, ("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
                          "<s>", "</s>", "</s>"),
    "granite": FamilySpec("granite", "GraniteConfig", GRANITE,
                          ("<unk>", "<|end_of_text|>", "<|start_of_role|>", "<|end_of_role|>"), None,
                          "<|end_of_text|>", "<|end_of_text|>",
                          (("embedding_multiplier", 12.0), ("residual_multiplier", 0.22),
                           ("attention_multiplier", 0.0078125), ("logits_scaling", 8.0))),
    "gemma3": FamilySpec("gemma3", "Gemma3TextConfig", GEMMA3,
                         ("<unk>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"), "<bos>", "<end_of_turn>",
                         "<end_of_turn>", (("head_dim", 128), ("query_pre_attn_scalar", 128), ("sliding_window", 64)),
                         sentencepiece="gemma"),
}


def _sentencepiece_style(specials: list[str], kind: str):
    """A small BPE with byte fallback and ▁ for spaces, as Mistral 7B's ("prefix") and Gemma's ("gemma")
    tokenizer.json are, with the 256 <0xXX> byte tokens in its vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    if kind == "prefix":
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
    else:
        backend.normalizer = normalizers.Replace(" ", "▁")
        backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    corpus = ["The capital of France is Paris.", "Write a haiku about the sea.", "List three prime numbers."] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    data = json.loads(backend.to_str())
    vocab = data["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return Tokenizer.from_str(json.dumps(data))


def make_family_model(folder: Path, family: str) -> Path:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from tests.helpers import _byte_level_bpe

    spec = FAMILIES[family]
    backend = (_sentencepiece_style(list(spec.specials), spec.sentencepiece) if spec.sentencepiece
               else _byte_level_bpe(list(spec.specials)))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token=spec.bos,
                                        eos_token=spec.eos, pad_token=spec.eos)
    tokenizer.chat_template = spec.template
    vocab = tokenizer.get_vocab()
    torch.manual_seed(0)
    # rows of 256: whole blocks for the k-quants (q4_k_m ...), as in every real model
    settings = dict(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                    bos_token_id=vocab.get(spec.bos) if spec.bos else None, eos_token_id=vocab[spec.eos],
                    pad_token_id=vocab[spec.eos], tie_word_embeddings=True, initializer_range=0.1)
    config = getattr(transformers, spec.config)(**{**settings, **dict(spec.extra)})
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = sorted({vocab[spec.eos], vocab[spec.end_of_turn]})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
