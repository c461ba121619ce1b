"""GPT-2's files: Hugging Face checkpoints (safetensors) and tokenizer files, read and written.

A ``gpt`` model of the companion has GPT-2's architecture exactly (Radford et al. 2019): learned
positions, pre-norm LayerNorm (eps 1e-5), the tanh GELU, biases, a 4x MLP and the head tied to
the token embedding. So the published weights drop in once the names are translated:

    Hugging Face name (a GPT2LMHeadModel file; a GPT2Model file, such as the published
    openai-community/gpt2 one, has the same names without 'transformer.' and no lm_head)
    Hugging Face name                         companion name           layout
    transformer.wte.weight                    wte.w                    (V, C), the same
    transformer.wpe.weight                    wpe.w                    (block_size, C)
    transformer.h.{i}.ln_1.weight / .bias     blocks.{i}.norm1.w / .b
    transformer.h.{i}.attn.c_attn.weight      blocks.{i}.attn.c_attn.w (C, 3C): q, k, v side by side
    transformer.h.{i}.attn.c_proj.weight      blocks.{i}.attn.c_proj.w (C, C)
    transformer.h.{i}.ln_2.weight / .bias     blocks.{i}.norm2.w / .b
    transformer.h.{i}.mlp.c_fc.weight         blocks.{i}.ffn.c_fc.w    (C, 4C)
    transformer.h.{i}.mlp.c_proj.weight       blocks.{i}.ffn.c_proj.w  (4C, C)
    transformer.ln_f.weight / .bias           norm_f.w / .b
    lm_head.weight                            head.proj.w              (V, C) there, (C, V) here

GPT-2 was written with a ``Conv1D`` layer whose weight is stored (in, out), the transpose of a
PyTorch ``nn.Linear``. The companion's ``Linear`` also stores (in, out), so every block weight
copies across unchanged; only a separate (untied) head needs a transpose.

safetensors is a file format made for exactly this: an 8-byte little-endian header length, a
JSON header naming each tensor's dtype, shape and byte range, then the raw bytes. Reading it
runs no code, unlike PyTorch's pickled ``pytorch_model.bin``, which this module refuses.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from .config import ModelConfig
from .tools.io import atomic_write, read_json, write_json
from .model import Transformer
from .tokenizers.base import SPECIALS, Tokenizer
from .tokenizers.bpe import BYTE_OFFSET, GPT2_PATTERN, N_BASE, BPETokenizer

SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
                      "U8": np.uint8, "BOOL": np.bool_}
MAX_HEADER_BYTES = 100 * 1024 * 1024


# ------------------------------------------------------------------ safetensors


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file as a NumPy array (bfloat16 is widened to float32)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: too short to be a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(f"{path}: header length {n} does not fit the file: not a safetensors file, or truncated")
    try:
        header = json.loads(data[8 : 8 + n])
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: the safetensors header is not valid JSON: {err}") from err
    body = memoryview(data)[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        if not 0 <= start <= end <= len(body):
            raise ValueError(f"{path}: tensor {name!r} claims bytes {start}..{end} of a {len(body)}-byte body")
        raw = body[start:end]
        if dtype == "BF16":  # the top half of a float32: shift the 16 bits up
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in SAFETENSORS_DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(SAFETENSORS_DTYPES[dtype]).newbyteorder("<"))
        else:
            raise ValueError(f"{path}: tensor {name!r} has dtype {dtype}, which this reader does not support")
        if array.size != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} has {array.size} values for shape {shape}")
        out[name] = array.reshape(shape).astype(array.dtype.newbyteorder("="), copy=True)
    return out


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Write arrays as a .safetensors file, atomically."""
    names = {np.dtype(t): n for n, t in SAFETENSORS_DTYPES.items()}
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if array.dtype not in names:
            raise ValueError(f"tensor {name!r}: dtype {array.dtype} cannot be written to safetensors here")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)

    return atomic_write(path, write)


# ------------------------------------------------------------------ the model


def config_from_gpt2(hf: dict) -> ModelConfig:
    """A companion config from a Hugging Face GPT2Config (config.json), refusing what differs."""
    problems = []
    if hf.get("model_type", "gpt2") != "gpt2":
        problems.append(f"model_type is {hf.get('model_type')!r}, not 'gpt2'")
    if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
        problems.append(f"activation_function {hf['activation_function']!r} is not GPT-2's tanh GELU")
    n_embd = hf.get("n_embd", 768)
    if hf.get("n_inner") not in (None, 4 * n_embd):
        problems.append(f"n_inner {hf['n_inner']} is not 4 * n_embd")
    for flag, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                       ("reorder_and_upcast_attn", False)):
        if hf.get(flag, want) != want:
            problems.append(f"{flag}={hf[flag]} (the companion's attention assumes {want})")
    if problems:
        raise ValueError("this GPT-2 config cannot be loaded into the companion: " + "; ".join(problems))
    return ModelConfig(family="gpt", vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024),
                       n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12), n_embd=n_embd,
                       norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                       tie_weights=bool(hf.get("tie_word_embeddings", True)), dtype="float32")


def gpt2_names(config: ModelConfig) -> dict[str, str]:
    """companion parameter name -> Hugging Face name (the table in this module's docstring)."""
    names = {"wte.w": "transformer.wte.weight", "wpe.w": "transformer.wpe.weight",
             "norm_f.w": "transformer.ln_f.weight", "norm_f.b": "transformer.ln_f.bias"}
    parts = {"norm1": "ln_1", "attn.c_attn": "attn.c_attn", "attn.c_proj": "attn.c_proj", "norm2": "ln_2",
             "ffn.c_fc": "mlp.c_fc", "ffn.c_proj": "mlp.c_proj"}
    for i in range(config.n_layer):
        for ours, theirs in parts.items():
            names[f"blocks.{i}.{ours}.w"] = f"transformer.h.{i}.{theirs}.weight"
            names[f"blocks.{i}.{ours}.b"] = f"transformer.h.{i}.{theirs}.bias"
    if not config.tie_weights:
        names["head.proj.w"] = "lm_head.weight"
    return names


def load_gpt2(folder: str | os.PathLike) -> Transformer:
    """A companion model holding the weights of a Hugging Face GPT-2 folder (config.json +
    model.safetensors), in float32."""
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")):
            raise ValueError(f"{folder} holds only a pickled PyTorch checkpoint (.bin/.pt). Loading one runs "
                             "arbitrary code, so the companion never does: convert it to model.safetensors "
                             "first (transformers: model.save_pretrained(folder, safe_serialization=True))")
        raise FileNotFoundError(f"{folder}: no model.safetensors")
    config = config_from_gpt2(read_json(folder / "config.json", "GPT-2 config"))
    tensors = read_safetensors(folder / "model.safetensors")
    # A GPT2LMHeadModel checkpoint prefixes the body's names with 'transformer.'; a GPT2Model one
    # (the published openai-community/gpt2 file) stores them bare and has no lm_head: the head is tied.
    prefix = "transformer."
    tensors = {(k if k.startswith(prefix) or k.startswith("lm_head.") else prefix + k): v for k, v in tensors.items()}
    model = Transformer(config, np.random.default_rng(0))  # every weight is overwritten below
    params = model.parameters()
    for ours, theirs in gpt2_names(config).items():
        if theirs not in tensors:
            if theirs == "lm_head.weight":
                raise ValueError(f"{folder}: config.json says the head is untied (tie_word_embeddings false) but "
                                 "model.safetensors has no lm_head.weight")
            raise ValueError(f"{folder}/model.safetensors has no tensor {theirs!r} (needed for {ours}), "
                             f"with or without the 'transformer.' prefix")
        value = tensors[theirs].T if ours == "head.proj.w" else tensors[theirs]  # nn.Linear stores (V, C)
        if value.shape != params[ours].shape:
            raise ValueError(f"{theirs}: shape {value.shape} does not match the config's {params[ours].shape}")
        params[ours][...] = value  # in place: parameters may be views of one buffer
    return model


def save_gpt2(model: Transformer, folder: str | os.PathLike) -> Path:
    """Write a ``gpt`` model as a Hugging Face GPT-2 folder that ``from_pretrained`` loads."""
    c = model.config
    differs = {k: getattr(c, k) for k, want in (("family", "gpt"), ("norm", "layernorm"), ("positions", "learned"),
                                                 ("ffn", "gelu"), ("bias", True), ("norm_placement", "pre"))
               if getattr(c, k) != want}
    if differs or c.ffn_hidden != 4 * c.n_embd:
        raise ValueError(f"only GPT-2's architecture can be saved in its format; this model differs in {differs or 'ffn_hidden'}")
    folder = Path(folder)
    params = model.parameters()
    tensors = {theirs: (params[ours].T if ours == "head.proj.w" else params[ours]).astype(np.float32)
               for ours, theirs in gpt2_names(c).items()}
    write_safetensors(folder / "model.safetensors", tensors, {"format": "pt"})
    write_json(folder / "config.json", {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
        "n_positions": c.block_size, "n_ctx": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer,
        "n_head": c.n_head, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": c.norm_eps,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "tie_word_embeddings": bool(c.tie_weights),
        "scale_attn_weights": True,
    })
    return folder


# ------------------------------------------------------------------ the tokenizer files


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes stand for themselves,
    the other 68 are shifted to code points 256 and up (so a space is 'Ġ', a newline 'Ċ')."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class GPT2FilesTokenizer(Tokenizer):
    """A byte-level BPE tokenizer read from ``vocab.json`` + ``merges.txt``, with those files' ids.

    The merges run through the companion's ``BPETokenizer`` (same algorithm: in each chunk,
    merge the lowest-ranked learned pair until none is left); only the ids differ, so a table
    maps the companion's ids to the file's. The chunking uses ``GPT2_PATTERN``, GPT-2's
    expression rewritten for Python's ``re``: it agrees with the original on letters, digits,
    punctuation and whitespace; the original's \\p{L}/\\p{N} classes differ from ``re``'s on rare
    characters (combining marks, non-decimal numerals such as '½')."""

    kind = "gpt2-files"

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        byte_char = bytes_to_unicode()
        ours = {byte_char[b]: BYTE_OFFSET + b for b in range(256)}  # token string -> companion id
        pairs = []
        for k, (a, b) in enumerate(self.merges):
            if a not in ours or b not in ours:
                raise ValueError(f"merges.txt line {k + 1}: {a!r} {b!r} uses a token no earlier line made")
            pairs.append((ours[a], ours[b]))
            ours[a + b] = N_BASE + k
        missing = [t for t in ours if t not in self.vocab]
        if missing:
            raise ValueError(f"vocab.json lacks {len(missing)} token(s) the merges make, e.g. {missing[:3]}")
        self.bpe = BPETokenizer(pairs, pattern=GPT2_PATTERN)
        self.to_file = np.full(N_BASE + len(pairs), -1, dtype=np.int64)
        for token, i in ours.items():
            self.to_file[i] = self.vocab[token]
        self.from_file = {int(f): i for i, f in enumerate(self.to_file) if f >= 0}

    @classmethod
    def from_files(cls, vocab_json: str | os.PathLike, merges_txt: str | os.PathLike) -> "GPT2FilesTokenizer":
        vocab = read_json(vocab_json, "vocab.json")
        merges = []
        for n, line in enumerate(Path(merges_txt).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#version"):
                continue
            parts = line.split(" ")
            if len(parts) != 2:
                raise ValueError(f"{merges_txt}:{n}: expected two tokens separated by one space, got {line!r}")
            merges.append((parts[0], parts[1]))
        return cls(vocab, merges)

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if add_bos or add_eos:
            raise ValueError("GPT-2's files define no <bos>/<eos> ids for the companion to add")
        return [int(self.to_file[i]) for i in self.bpe.encode(text)]

    def decode(self, ids, skip_special: bool = True) -> str:
        ours = []
        for i in ids:
            if int(i) not in self.from_file:
                raise ValueError(f"token id {i} is not a byte or a merge of these files (special tokens are not decoded)")
            ours.append(self.from_file[int(i)])
        return self.bpe.decode(ours)


def special_ids(tokenizer: GPT2FilesTokenizer) -> dict[str, int]:
    """Ids of the files' own special tokens (those not made from bytes), e.g. '<|endoftext|>'."""
    made = {int(f) for f in tokenizer.to_file if f >= 0}
    return {t: i for t, i in tokenizer.vocab.items() if i not in made and t not in SPECIALS}
