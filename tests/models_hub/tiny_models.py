"""Real, tiny language models built inside the tests: nothing is downloaded.

Every builder is deterministic (fixed seeds, a built-in corpus) and fast enough to call per test.
The broken-upload helpers at the bottom write the files a careless or hostile uploader would send.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# Everything here runs offline; make sure nothing in transformers tries the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN]
LLAMA_HEADS = 4
LLAMA_KV_HEADS = 2

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# A few hundred words of ordinary prose (plus some non-ASCII) to train the BPE merges on.
CORPUS = """
The quick brown fox jumps over the lazy dog. A small model learns to speak one token at a time.
Language models read text, split it into tokens, and predict the next token from the ones before.
Every user on the platform can upload a model, share it with friends, and chat with it in the
browser. The hub checks each upload before anyone may use it: the configuration must parse, the
weights must load, and the model must answer a short prompt without crashing or running out of
memory. When the check fails, the user sees a message that says what went wrong and how to fix it.
Hello, world! How are you today? I am fine, thank you. What is the weather like where you live?
It rained in the morning, but the sun came out after lunch and the children played in the park.
Numbers matter too: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 3.14 2.71 1e-5 and 99 percent.
Code looks different from prose: def main(): return 0; for i in range(10): print(i * i).
JSON is common as well: {"name": "tiny", "layers": 2, "ok": true, "tags": ["demo", "test"]}.
Café, naïve, über, señor, smörgåsbord, déjà vu; Grüße aus München; 日本語のテキスト; 你好世界;
Привет, мир; مرحبا بالعالم; שלום עולם; emoji too: 🙂 🚀 ✨.
Once upon a time there was a little robot who wanted to write poems. Every night it read books
about the sea, the stars, the mountains and the rivers, and every morning it wrote a new line.
The line was never perfect, but the robot was patient, and slowly the poems became better.
The system prompt tells the assistant to be helpful, honest and brief. The user asks a question,
the assistant answers, and the conversation goes on until one of them says goodbye.
Science explains the world with careful measurement. History remembers what people did and why.
Music is made of rhythm, melody and harmony. Cooking needs heat, salt, patience and good bread.
Cats sleep most of the day; dogs like to walk; birds sing at dawn; fish swim in cold water.
Trains leave the station at nine, ten and eleven. The last bus home departs at midnight sharp.
"""


def build_tokenizer(dest: Path) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on CORPUS, with bos/eos/pad and a chat template, saved
    into `dest` (tokenizer.json + tokenizer_config.json + special tokens map)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=1,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=256,
    )
    fast.chat_template = CHAT_TEMPLATE
    dest.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(dest)
    return fast


def _token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    ids = {}
    for name, token in (("bos", BOS_TOKEN), ("eos", EOS_TOKEN), ("pad", PAD_TOKEN)):
        token_id = tokenizer.convert_tokens_to_ids(token)
        assert isinstance(token_id, int)
        ids[name] = token_id
    return ids


def _save_generation_config(dest: Path, ids: dict[str, int]) -> None:
    GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        do_sample=False,
        max_new_tokens=16,
    ).save_pretrained(dest)


def _drop_chat_template(dest: Path) -> None:
    """Remove the chat template however this transformers version stored it."""
    (dest / "chat_template.jinja").unlink(missing_ok=True)
    (dest / "chat_template.json").unlink(missing_ok=True)
    config_file = dest / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    if config.pop("chat_template", None) is not None:
        config_file.write_text(json.dumps(config, indent=2))


def tiny_llama_config(
    vocab_size: int, ids: dict[str, int], initializer_range: float = 0.02
) -> LlamaConfig:
    return LlamaConfig(
        initializer_range=initializer_range,
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=LLAMA_HEADS,
        num_key_value_heads=LLAMA_KV_HEADS,  # grouped-query attention (and its GGUF permutation)
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )


def build_tiny_llama(
    dest: Path, *, chat_template: bool = True, seed: int = 0, initializer_range: float = 0.02
) -> Path:
    """A 2-layer Llama with random weights, saved as a Hugging Face folder in `dest`.

    A larger `initializer_range` gives the (frozen, under LoRA) output head rows long enough
    for adapters alone to make one token far likelier than the rest."""
    tokenizer = build_tokenizer(dest)
    ids = _token_ids(tokenizer)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer), ids, initializer_range))
    # transformers 5 always writes safetensors (`safe_serialization` is gone from save_pretrained).
    model.save_pretrained(dest)
    _save_generation_config(dest, ids)
    if not chat_template:
        _drop_chat_template(dest)
    return dest


def build_tiny_gpt2(dest: Path, *, seed: int = 0, positions: int = 256) -> Path:
    """A 2-layer GPT-2 with random weights, saved as a Hugging Face folder in `dest`."""
    tokenizer = build_tokenizer(dest)
    ids = _token_ids(tokenizer)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )
    GPT2LMHeadModel(config).save_pretrained(dest)
    _save_generation_config(dest, ids)
    return dest


def _llama_cpp_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of q/k rows (transformers undoes it on load)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def build_tiny_gguf(dest_file: Path, *, seed: int = 0) -> Path:
    """A GGUF file (F32 tensors) of the tiny Llama, laid out as llama.cpp's converter writes it:
    `llama.*` metadata, `blk.N.*` tensor names with permuted q/k, and a byte-level BPE
    (`tokenizer.ggml.model = gpt2`) vocabulary, merges, special ids and chat template."""
    import gguf  # only the GGUF tests need it

    dest_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_file.parent, prefix=".tiny-") as work:
        tokenizer = build_tokenizer(Path(work))
        tokenizer_json = json.loads((Path(work) / "tokenizer.json").read_text())
    ids = _token_ids(tokenizer)
    config = tiny_llama_config(len(tokenizer), ids)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}

    vocab: dict[str, int] = tokenizer.get_vocab()
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    assert len(tokens) == config.vocab_size
    special = set(SPECIAL_TOKENS)
    token_types = [
        int(gguf.TokenType.CONTROL) if token in special else int(gguf.TokenType.NORMAL)
        for token in tokens
    ]
    merges = [
        merge if isinstance(merge, str) else " ".join(merge)
        for merge in tokenizer_json["model"]["merges"]
    ]
    head_dim = config.hidden_size // LLAMA_HEADS

    writer = gguf.GGUFWriter(str(dest_file), arch="llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_rope_dimension_count(head_dim)
    writer.add_head_count(LLAMA_HEADS)
    writer.add_head_count_kv(LLAMA_KV_HEADS)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(ids["bos"])
    writer.add_eos_token_id(ids["eos"])
    writer.add_pad_token_id(ids["pad"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def add(name: str, array: np.ndarray) -> None:
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))

    add("token_embd.weight", state["model.embed_tokens.weight"])
    for layer in range(config.num_hidden_layers):
        hf = f"model.layers.{layer}."
        blk = f"blk.{layer}."
        add(
            blk + "attn_q.weight",
            _llama_cpp_permute(state[hf + "self_attn.q_proj.weight"], LLAMA_HEADS),
        )
        add(
            blk + "attn_k.weight",
            _llama_cpp_permute(state[hf + "self_attn.k_proj.weight"], LLAMA_KV_HEADS),
        )
        add(blk + "attn_v.weight", state[hf + "self_attn.v_proj.weight"])
        add(blk + "attn_output.weight", state[hf + "self_attn.o_proj.weight"])
        add(blk + "ffn_gate.weight", state[hf + "mlp.gate_proj.weight"])
        add(blk + "ffn_up.weight", state[hf + "mlp.up_proj.weight"])
        add(blk + "ffn_down.weight", state[hf + "mlp.down_proj.weight"])
        add(blk + "attn_norm.weight", state[hf + "input_layernorm.weight"])
        add(blk + "ffn_norm.weight", state[hf + "post_attention_layernorm.weight"])
    add("output_norm.weight", state["model.norm.weight"])
    add("output.weight", state["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dest_file


# ---- broken uploads ------------------------------------------------------------------------------


def write_truncated_safetensors(path: Path, *, keep_fraction: float = 0.5) -> Path:
    """A safetensors file whose header promises more bytes than the file holds (an interrupted
    upload). If `path` already holds a safetensors file it is cut in place; otherwise a small one is
    written first and then cut."""
    if not path.exists():
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"weight": torch.zeros(64, 64)}, str(path))
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    keep = max(header_end + 1, int(len(data) * keep_fraction))
    path.write_bytes(data[:keep])
    return path


def write_pickle_checkpoint(path: Path) -> Path:
    """A real `torch.save` pickle checkpoint (pytorch_model.bin). Written, never loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"weight": torch.zeros(4, 4)}, path)
    return path


def config_with_auto_map(model_dir: Path) -> Path:
    """Make `model_dir/config.json` ask for custom code (`auto_map`), as remote-code models do."""
    config_file = model_dir / "config.json"
    config: dict[str, Any] = json.loads(config_file.read_text()) if config_file.exists() else {}
    config["auto_map"] = {
        "AutoConfig": "configuration_evil.EvilConfig",
        "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM",
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config, indent=2))
    (model_dir / "modeling_evil.py").write_text("import os\nos.system('echo pwned')\n")
    return config_file
