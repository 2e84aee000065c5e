"""The tokenizer inside a GGUF file, read from the merged folder's tokenizer.json.

Two kinds, as llama.cpp knows them:
- byte-level BPE (`gpt2`: SmolLM, Llama 3, Qwen, Phi-4, Mistral Nemo): tokens, types and
  merges, with the pre-tokenizer llama.cpp should split text with (families.pre_tokenizer);
- SentencePiece-style (`llama`: Gemma, Mistral 7B, Llama 2): tokens with scores and types,
  `<0xXX>` byte tokens for byte fallback, and whether a space is put before the text.
  tokenizer.json keeps a BPE model's merges, not SentencePiece's scores; llama.cpp merges the
  pair whose joined token scores highest, so each token scores minus the rank of the first merge
  that makes it, which gives the same merge order. A Unigram model carries its scores.
The export's checks compare llama.cpp's own tokenization with the merged tokenizer's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import families
from .errors import ExportError
from .families import Family

BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def read_tokenizer_json(folder: Path) -> dict:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no tokenizer.json (a fast tokenizer): GGUF export needs one")
    return json.loads(path.read_text(encoding="utf-8"))


def _parts(component: dict | None, key: str) -> list[dict]:
    """A pre-tokenizer or normalizer and the parts of a Sequence of them."""
    if not component:
        return []
    return [component, *component.get(key, [])]


def is_sentencepiece(data: dict) -> bool:
    """A SentencePiece-style tokenizer: byte fallback, a Unigram model, or ▁ for spaces."""
    model = data.get("model", {})
    kinds = {p.get("type") for p in _parts(data.get("pre_tokenizer"), "pretokenizers")}
    return model.get("type") == "Unigram" or bool(model.get("byte_fallback")) or "Metaspace" in kinds


def adds_space_prefix(data: dict) -> bool:
    """Whether the tokenizer puts ▁ before the text (Llama 2, Mistral 7B: yes; Gemma: no)."""
    for part in _parts(data.get("pre_tokenizer"), "pretokenizers"):
        if part.get("type") == "Metaspace":
            scheme = part.get("prepend_scheme", "always" if part.get("add_prefix_space", True) else "never")
            return scheme != "never"
    return any(part.get("type") == "Prepend" for part in _parts(data.get("normalizer"), "normalizers"))


def _added(data: dict) -> dict[int, dict]:
    return {t["id"]: t for t in data.get("added_tokens", [])}


def bpe_vocabulary(data: dict, vocab_size: int):
    """(tokens, token types, merges) of a byte-level BPE tokenizer.json."""
    import gguf

    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"the tokenizer is {model.get('type', 'unknown')}, neither byte-level BPE nor "
                          "SentencePiece-style: GGUF export cannot write it")
    vocab: dict[str, int] = model.get("vocab", {})
    added = _added(data)
    by_id = {i: t for t, i in vocab.items()}
    by_id.update({i: t["content"] for i, t in added.items()})
    tokens, types = [], []
    for i in range(max(vocab_size, max(by_id) + 1)):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges


def sentencepiece_vocabulary(data: dict, vocab_size: int):
    """(tokens, scores, token types) of a SentencePiece-style tokenizer.json (BPE with merges, or Unigram)."""
    import gguf

    model = data.get("model", {})
    added = _added(data)
    scores: dict[int, float] = {}
    if model.get("type") == "Unigram":
        pieces = model.get("vocab", [])
        by_id = {i: piece for i, (piece, _score) in enumerate(pieces)}
        scores = {i: float(score) for i, (_piece, score) in enumerate(pieces)}
        unk = model.get("unk_id")
    elif model.get("type") == "BPE":
        vocab: dict[str, int] = model.get("vocab", {})
        by_id = {i: t for t, i in vocab.items()}
        for rank, merge in enumerate(model.get("merges", [])):
            left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
            token_id = vocab.get(left + right)
            if token_id is not None and token_id not in scores:
                scores[token_id] = -float(rank)
        unk = vocab.get(model.get("unk_token") or "")
    else:
        raise ExportError(f"the tokenizer's model is {model.get('type', 'unknown')}: GGUF export writes BPE and "
                          "Unigram SentencePiece-style tokenizers")
    by_id.update({i: t["content"] for i, t in added.items()})
    missing = 256 - sum(1 for token in by_id.values() if BYTE_TOKEN.match(token))
    if missing:  # llama.cpp falls back to them for any character outside the vocabulary, and aborts without
        raise ExportError(f"the SentencePiece-style tokenizer lacks {missing} of the 256 <0xXX> byte tokens that "
                          "llama.cpp falls back to: it cannot be written as GGUF")
    unmerged = min(scores.values(), default=0.0) - 1.0  # tokens no merge makes: after every merge, by id
    tokens, token_scores, types = [], [], []
    for i in range(max(vocab_size, max(by_id) + 1)):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            token_scores.append(-1e9)
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(token)
        token_scores.append(scores.get(i, unmerged - i))
        if i == unk:
            types.append(gguf.TokenType.UNKNOWN)
        elif i in added:
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif BYTE_TOKEN.match(token):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    return tokens, token_scores, types


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer adds BOS itself (so the GGUF tells llama.cpp to)."""
    return bool(getattr(tokenizer, "add_bos_token", False))


def write_vocab(writer, merged: Path, tokenizer, config, family: Family) -> dict:
    """The tokenizer's keys in the GGUF; returns what the export report says about it."""
    data = read_tokenizer_json(merged)
    if is_sentencepiece(data):
        tokens, scores, types = sentencepiece_vocabulary(data, config.vocab_size)
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_add_space_prefix(adds_space_prefix(data))
        report = {"tokenizer": "SentencePiece-style (llama)"}
    else:
        tokens, types, merges = bpe_vocabulary(data, config.vocab_size)
        pre, pre_source = families.pre_tokenizer(tokenizer, family)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        report = {"tokenizer": "byte-level BPE (gpt2)", "pre_tokenizer": pre, "pre_tokenizer_from": pre_source}
    writer.add_vocab_size(len(tokens))
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    stops = families.end_of_turn_ids(tokenizer, family)
    if len(stops) > 1:  # the turn ends on a token other than eos (Llama 3's <|eot_id|>, Phi's <|end|>)
        writer.add_eot_token_id(stops[1])
    writer.add_add_bos_token(adds_bos(tokenizer))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return {**report, "vocab_size": len(tokens)}
