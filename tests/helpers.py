"""Helpers shared by tests."""

from __future__ import annotations

from pathlib import Path


def _byte_level_bpe(specials: list[str]):
    """A small byte-level BPE (the kind SmolLM, Llama 3 and Qwen use), trained here on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = ["The capital of France is Paris.", "Write a haiku about the sea.", "List three prime numbers.",
              "Explain what a LoRA adapter is in one sentence.", "def fibonacci(n): return n"] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return backend


def make_tiny_model(folder: Path, bpe: bool = False) -> Path:
    """Write a tiny random LlamaForCausalLM with a small tokenizer and a ChatML chat template.

    The tokenizer is character-level, or byte-level BPE with `bpe=True` (what GGUF export needs).
    Everything is made here, offline, in about a second.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    if bpe:
        backend = _byte_level_bpe(specials)
    else:
        words = [chr(c) for c in range(32, 127)] + ["\n"]
        vocab = {tok: i for i, tok in enumerate(specials + words)}
        backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", pad_token="<|im_end|>")
    tokenizer.chat_template = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
        "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=True,
                         # BPE models get sharp attention, so a wrong q/k layout shows in their logits
                         initializer_range=0.3 if bpe else 0.02)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def lora_model(folder: Path, std: float = 0.02):
    """The model in `folder` (float32, sdpa, no cache) with the project's default adapters, every LoRA B
    given values (PEFT starts them at zero, which would leave half the gradients zero)."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from smolora_engine.project import Project
    from smolora_engine.training.trainer import lora_config

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, lora_config(Project(name="test")))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=std)
    return model


def prefixed_samples(vocab: int, prefix: int, lengths: list[tuple[int, int]], seed: int = 1) -> list[dict]:
    """Samples that start with the same `prefix` random tokens: (length, untrained prompt) each."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    head = torch.randint(3, vocab, (prefix,), generator=generator).tolist()
    samples = []
    for length, prompt in lengths:
        ids = head + torch.randint(3, vocab, (length - prefix,), generator=generator).tolist()
        samples.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return samples


def recipe_trainer(model, recipe, folder: Path, tokenizer_dir: Path):
    """The worker's trainer class around `model`, with `recipe`'s attention and arguments (for its loss)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from smolora_engine.project import Project
    from smolora_engine.training.attention import apply_attention
    from smolora_engine.training.trainer import make_trainer_class, training_args

    apply_attention(model, recipe)
    return make_trainer_class()(model=model, args=training_args(Project(name="test"), folder, "cpu", recipe, False),
                                train_dataset=Dataset.from_list([{"input_ids": [1, 2], "labels": [1, 2]}]),
                                processing_class=AutoTokenizer.from_pretrained(tokenizer_dir))


def _heap_in_use():
    """A function giving the bytes of malloc's heap in use now (glibc's mallinfo2); skips without glibc."""
    import ctypes

    import pytest

    class Info(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("needs glibc's mallinfo2 to count the heap")
    mallinfo2.restype = Info

    def in_use() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return in_use


def heap_held(compute):
    """compute()'s result, and the bytes of malloc's heap it left in use (glibc's mallinfo2): what autograd
    keeps for the backward pass, however it keeps it (saved-tensor hooks included). Skips without glibc."""
    in_use = _heap_in_use()
    before = in_use()
    result = compute()
    return result, in_use() - before


def heap_peak(compute):
    """compute()'s result, and the most bytes of malloc's heap it had in use above what was in use before, as
    a thread reading mallinfo2 without pause saw it (torch's ops let it run). Skips without glibc."""
    import threading

    in_use = _heap_in_use()
    before = in_use()
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], in_use() - before)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = compute()
    finally:
        done.set()
        watcher.join()
    return result, peak[0]
