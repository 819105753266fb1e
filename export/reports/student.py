"""The report student: a Hugging Face encoder, per-finding attention pooling, and 14 four-way heads.

Saved as a folder (`encoder/` via save_pretrained, `heads.pt`, `tokenizer.json`, `student.json`) so that
export and evaluation rebuild exactly the trained module. The forward takes `input_ids` and
`attention_mask` and returns logits `[batch, 14, 4]`: the ONNX graph's interface.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from radedge.labels import N_CLASSES, N_FINDINGS

STUDENT_JSON = "student.json"
TOKENIZER_JSON = "tokenizer.json"


class FindingHeads(nn.Module):
    """One learned query per finding attends over the token states; each finding's own pooled vector
    goes through its own linear layer to 4 logits.

    Why not one mean-pooled vector: in a report of ten "no X" sentences, the one sentence that says
    "moderate left pneumothorax" is a tenth of the mean; a per-finding attention reads it at full weight.
    """

    def __init__(self, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(N_FINDINGS, hidden) * hidden ** -0.5)
        self.dropout = nn.Dropout(dropout)
        self.weight = nn.Parameter(torch.randn(N_FINDINGS, hidden, N_CLASSES) * hidden ** -0.5)
        self.bias = nn.Parameter(torch.zeros(N_FINDINGS, N_CLASSES))

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        scores = torch.einsum("bth,fh->bft", states, self.queries)  # [batch, 14, tokens]
        scores = scores.masked_fill(attention_mask[:, None, :] == 0, -1e4)
        pooled = torch.einsum("bft,bth->bfh", torch.softmax(scores, dim=-1), states)  # [batch, 14, hidden]
        return torch.einsum("bfh,fhc->bfc", self.dropout(pooled), self.weight) + self.bias


class Adapter(nn.Module):
    """One small transformer layer (self-attention + feed-forward, post-norm) on a projection of the
    encoder's states to `width`.

    Why: fine-tuning a whole pretrained layer costs what the layer costs; on a shared 2-core CPU that
    made cross-validation impossible. With the pretrained encoder frozen, its outputs are computed
    once, and this layer (about 1/9 of a MiniLM layer at width 128) still lets every token see its
    sentence again, which is what reading a negation or hedge needs ("no ... effusion").
    """

    def __init__(self, hidden: int, width: int = 128, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"adapter width {width} must be a multiple of its {heads} heads")
        self.heads, self.width = heads, width
        self.proj = nn.Linear(hidden, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.norm1 = nn.LayerNorm(width)
        self.ff = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.norm2 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.proj(states)
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.width // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * (self.width // self.heads) ** -0.5
        scores = scores.masked_fill(attention_mask[:, None, None, :] == 0, -1e4)
        mixed = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(b, t, self.width)
        x = self.norm1(x + self.dropout(self.out(mixed)))
        return self.norm2(x + self.dropout(self.ff(x)))


class AdaptedHeads(nn.Module):
    """Adapter, then the finding heads: what trains on top of a frozen encoder."""

    def __init__(self, hidden: int, width: int = 128, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.adapter = Adapter(hidden, width, heads, dropout)
        self.findings = FindingHeads(width, dropout)

    def forward(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.findings(self.adapter(states, attention_mask), attention_mask)


def make_heads(hidden: int, adapter: dict[str, int] | None = None, dropout: float = 0.1) -> nn.Module:
    """FindingHeads, or AdaptedHeads when `adapter` ({"width": .., "heads": ..}) is given (student.json)."""
    return AdaptedHeads(hidden, adapter["width"], adapter["heads"], dropout) if adapter else FindingHeads(hidden, dropout)


class ReportStudent(nn.Module):
    """encoder -> per-finding attention pooling (FindingHeads) -> logits [batch, 14, 4]."""

    def __init__(self, encoder: nn.Module, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = FindingHeads(encoder.config.hidden_size, dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.heads(states, attention_mask)


def load_encoder(base: str | Path, layers: int | None = None, vocab_size: int | None = None,
                 random_init: bool = False) -> nn.Module:
    """A Hugging Face encoder from a model folder (weights loaded) or a config (random init).

    `base` may be a folder with config.json (+ weights unless random_init) or a config.json path.
    `layers` keeps only the first N layers (a shallower, faster student that starts from the
    pretrained lower layers); `vocab_size` overrides the config's (a tokenizer trained on the corpus).
    """
    from transformers import AutoConfig, AutoModel

    base = Path(base)
    config_path = base if base.is_file() else base / "config.json"
    config = AutoConfig.from_pretrained(str(config_path.parent if config_path.name == "config.json" else config_path))
    if layers is not None:
        if layers > config.num_hidden_layers:
            raise ValueError(f"--layers {layers}: the base has only {config.num_hidden_layers}")
        config.num_hidden_layers = layers
    if vocab_size is not None:
        config.vocab_size = vocab_size
    has_weights = base.is_dir() and any((base / n).exists() for n in ("model.safetensors", "pytorch_model.bin"))
    if random_init or not has_weights:
        return AutoModel.from_config(config)
    return AutoModel.from_pretrained(str(base), config=config)


def save_student(model: ReportStudent, folder: Path, info: dict[str, Any], tokenizer_file: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(str(folder / "encoder"))
    torch.save(model.heads.state_dict(), folder / "heads.pt")
    (folder / TOKENIZER_JSON).write_bytes(Path(tokenizer_file).read_bytes())
    (folder / STUDENT_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def load_student(folder: str | Path) -> tuple[ReportStudent, dict[str, Any]]:
    """The trained student (eval mode) and its student.json (max_length, stride, provenance...)."""
    from transformers import AutoModel

    folder = Path(folder)
    info = json.loads((folder / STUDENT_JSON).read_text(encoding="utf-8"))
    model = ReportStudent(AutoModel.from_pretrained(str(folder / "encoder")))
    model.heads = make_heads(model.encoder.config.hidden_size, info.get("adapter"))
    model.heads.load_state_dict(torch.load(folder / "heads.pt", weights_only=True))
    return model.eval(), info
