"""The Modelfile for Ollama: the model's chat template translated into Ollama's Go template.

The translation is checked against the Jinja template itself (a system + three-turn
conversation rebuilt character for character); a template it cannot translate
faithfully is left out, with a note saying to write TEMPLATE by hand. A system message
has its own block, or opens the first user turn (Gemma: no system role), or the last
one (Mistral); an answer may open with text of its own after an empty generation
prompt (Mistral's " ").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..data.chat_format import ChatFormat

@dataclass
class OllamaTemplate:
    template: str | None  # a Go template, or None when the chat template could not be translated
    stops: list[str] = field(default_factory=list)
    note: str = ""


def ollama_template(tokenizer, fmt: ChatFormat | None = None, end_of_turn: list[str] | None = None,
                    runtime_bos: bool = False) -> OllamaTemplate:
    """Translate the model's chat template into an Ollama (Go) template.

    The Jinja template is rendered with marker contents; the text around each
    marker gives each role's prefix and suffix. The parts are then checked by
    rebuilding a system + three-turn conversation and comparing it with the
    Jinja rendering, character for character. The template is rendered with the
    run's template options (`fmt`), as training rendered it. The stops are the
    assistant turn's closing text, the eos, and the family's `end_of_turn` tokens. With
    `runtime_bos` (the GGUF tells llama.cpp to add BOS), a BOS the template writes first is left out.
    """
    sys_m, user_m, asst_m, user2_m = "SYSMARKQZX", "USERMARKQZX", "ASSTMARKQZX", "USER2MARKQZX"
    eos = tokenizer.eos_token or ""
    ends = [s for s in dict.fromkeys([eos, *(end_of_turn or [])]) if s]
    fmt = fmt or ChatFormat()

    closing = {"eos": False}  # Phi's template ends a conversation it is not asked to continue with eos

    def render(messages, generation=False):
        text = fmt.template(tokenizer, messages, generation)
        if closing["eos"] and not generation and text.endswith(eos):
            return text[:-len(eos)]  # Ollama always asks for the continuation: that eos never shows
        return text

    if not getattr(tokenizer, "chat_template", None):
        return OllamaTemplate(None, ends, "the model has no chat template: Ollama will use the raw prompt")
    u, a, u2 = ({"role": "user", "content": user_m}, {"role": "assistant", "content": asst_m},
                {"role": "user", "content": user2_m})
    try:
        one, one_gen = render([u]), render([u], True)
        if eos and not one_gen.startswith(one) and one.endswith(eos) and one_gen.startswith(one[:-len(eos)]):
            closing["eos"] = True
            one = render([u])
        two, three = render([u, a]), render([u, a, u2])
        if not one_gen.startswith(one):
            raise ValueError("the generation prompt does not follow the conversation")
        gen = one_gen[len(one):]  # empty in Mistral's: the answer starts right after [/INST]
        asst_suffix = two[two.index(asst_m) + len(asst_m):]
        # the answer as a turn of the history (followed by another user turn): templates such as Qwen3's
        # give the last answer a think block, and the history's answers none, as the Go template does
        middle = three[three.index(user_m) + len(user_m):three.index(asst_m)]
        tail = one[one.index(user_m) + len(user_m):]
        if middle.startswith(tail + gen):  # what opens an answer beyond the generation prompt (Mistral's " ")
            user_suffix, asst_prefix = tail, middle[len(tail + gen):]
        elif middle.endswith(gen) and gen:
            user_suffix, asst_prefix = middle[:len(middle) - len(gen)], ""
        else:
            raise ValueError("the answer does not follow the generation prompt")
        between = three[three.index(asst_m) + len(asst_m):three.index(user2_m)]
        if not between.startswith(asst_suffix):
            raise ValueError("turns are not separated the same way")
        user_prefix = between[len(asst_suffix):]
        head = one[:one.index(user_m)]
        if not head.endswith(user_prefix):
            raise ValueError("the first turn is rendered differently")
        default_head = head[:len(head) - len(user_prefix)]
        sys_prefix = sys_suffix = in_turn = None
        in_last = False
        try:
            with_system = render([{"role": "system", "content": sys_m}, u])
            sys_prefix = with_system[:with_system.index(sys_m)]
            rest = with_system[with_system.index(sys_m) + len(sys_m):with_system.index(user_m)]
            if rest.endswith(user_prefix):
                sys_suffix = rest[:len(rest) - len(user_prefix)]
            elif sys_prefix == head:  # no system role (Gemma): the system text opens the first user turn
                in_turn = rest
        except Exception:  # a template without a system role
            pass
        known = sys_suffix is not None or in_turn is not None
        expected = render([{"role": "system", "content": sys_m}, u, a, u2], True) if known else None
        opening = f"{sys_prefix}{sys_m}{sys_suffix}{user_prefix}" if in_turn is None else f"{head}{sys_m}{in_turn}"
        rebuilt = (f"{opening}{user_m}{user_suffix}{gen}{asst_prefix}{asst_m}{asst_suffix}"
                   f"{user_prefix}{user2_m}{user_suffix}{gen}")
        if in_turn is not None and rebuilt != expected:  # Mistral's: the system text opens the last user turn
            in_last = True
            rebuilt = (f"{head}{user_m}{user_suffix}{gen}{asst_prefix}{asst_m}{asst_suffix}"
                       f"{user_prefix}{sys_m}{in_turn}{user2_m}{user_suffix}{gen}")
        if expected is not None and rebuilt != expected:
            raise ValueError("the rebuilt conversation differs from the chat template's")
        if render([u, a, u2], True) != f"{default_head}{user_prefix}{user_m}{user_suffix}{gen}{asst_prefix}{asst_m}" \
                                       f"{asst_suffix}" \
                                       f"{user_prefix}{user2_m}{user_suffix}{gen}":
            raise ValueError("the rebuilt conversation differs from the chat template's")
    except (ValueError, TypeError) as exc:
        return OllamaTemplate(None, ends,
                              f"the chat template could not be translated ({exc}); write TEMPLATE by hand")
    bos = tokenizer.bos_token or ""
    note = "translated from the chat template and checked against it"
    if runtime_bos and bos and default_head.startswith(bos) and (sys_suffix is None or sys_prefix.startswith(bos)):
        # The runtime adds BOS itself (the GGUF says so): written in the template too, it would be doubled
        default_head, sys_prefix = default_head[len(bos):], (sys_prefix or "")[len(bos):]
        note += f"; its leading {bos} left to the runtime, which adds it"
    parts = [default_head, user_prefix, user_suffix, gen, asst_prefix, asst_suffix, sys_prefix or "",
             sys_suffix or "", in_turn or ""]
    if any("{{" in p or '"""' in p for p in parts):
        return OllamaTemplate(None, ends, "the chat template's text cannot be quoted in a Modelfile")
    first_turn, messages = "", ".Messages"
    if sys_suffix is not None:
        system = f"{{{{ if .System }}}}{sys_prefix}{{{{ .System }}}}{sys_suffix}{{{{ else }}}}{default_head}{{{{ end }}}}"
    elif in_turn is not None and in_last:  # the system text at the start of the last user turn (Mistral)
        system, messages = default_head, "$i, $_ := .Messages"
        first_turn = f"{{{{ if and (eq (len (slice $.Messages $i)) 1) $.System }}}}{{{{ $.System }}}}{in_turn}{{{{ end }}}}"
        note += "; the system message opens the last user turn, as the chat template writes it"
    elif in_turn is not None:  # the system text at the start of the first user turn (Gemma)
        system = f"{default_head}{{{{ $first := true }}}}"
        first_turn = f"{{{{ if and $first $.System }}}}{{{{ $.System }}}}{in_turn}{{{{ end }}}}{{{{ $first = false }}}}"
        note += "; the system message opens the first user turn, as the chat template writes it"
    else:
        system = default_head
        note += "; the chat template has no place for a system message, so SYSTEM is not used"
    template = (f"{system}{{{{ range {messages} }}}}{{{{ if eq .Role \"user\" }}}}{user_prefix}{first_turn}{{{{ .Content }}}}"
                f"{user_suffix}{{{{ else if eq .Role \"assistant\" }}}}{gen}{asst_prefix}{{{{ .Content }}}}{asst_suffix}"
                f"{{{{ end }}}}{{{{ end }}}}{gen}")
    stops = [s for s in dict.fromkeys([asst_suffix.strip(), *ends]) if s]
    return OllamaTemplate(template, stops, note)


def modelfile_text(gguf_name: str, template: OllamaTemplate, context_length: int, system: str = "",
                   name: str = "Modelfile") -> str:
    """The Modelfile (written as `name`); `system` is the run's configured system message (data.system_prompt)."""
    lines = [f"# Written by smolora export. Use: ollama create NAME -f {name}",
             f"FROM ./{gguf_name}"]
    if template.template is not None:
        lines.append(f'TEMPLATE """{template.template}"""')
    else:
        lines.append(f"# {template.note}")
    if system and '"""' not in system:
        lines.append(f'SYSTEM """{system}"""')
    elif system:
        lines.append('# the run\'s system message contains """ and cannot be quoted here: set SYSTEM by hand')
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in template.stops]
    lines += ["PARAMETER temperature 0.7", "PARAMETER top_p 0.9", f"PARAMETER num_ctx {min(context_length, 4096)}"]
    return "\n".join(lines) + "\n"

