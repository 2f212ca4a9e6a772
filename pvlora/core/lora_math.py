"""Exact low-rank algebra on LoRA factors. Pure tensor math: no files, no models.

A LoRA module holds ΔW = s·B·A with A: (r, d_in), B: (d_out, r), s = alpha/r (or alpha/sqrt(r)
for rsLoRA). Here a module is a :class:`LowRank` with the scale folded into B, so ΔW = B·A.
Everything is computed in float64 from the factors; no d_out×d_in matrix is ever formed, which is
what keeps extraction, composition, compression and similarity at milliseconds per layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from pvlora.core.errors import ArtifactError

Factors = dict[str, "LowRank"]  # module key -> factors


@dataclass
class LowRank:
    A: torch.Tensor  # (r, d_in)
    B: torch.Tensor  # (d_out, r), scale folded in

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.B.shape[0], self.A.shape[1])

    def dense(self) -> torch.Tensor:
        return self.B @ self.A  # (d_out, d_in): for tests and merging only

    def scaled(self, w: float) -> "LowRank":
        return LowRank(self.A, self.B * w)


def from_lora(A: torch.Tensor, B: torch.Tensor, scale: float) -> LowRank:
    """PEFT factors (lora_A.weight (r, d_in), lora_B.weight (d_out, r), scaling s) -> ΔW = (s·B)·A."""
    return LowRank(A.detach().to(torch.float64), B.detach().to(torch.float64) * scale)


def concat(terms: list[LowRank]) -> LowRank:
    """Σ_i B_i·A_i as one low-rank product: A = [A_1; A_2; ...] (rows), B = [B_1, B_2, ...] (cols).
    Exact for any signs and ranks; the result's rank is Σ r_i."""
    shapes = {t.shape for t in terms}
    if len(shapes) != 1:
        raise ValueError(f"cannot add low-rank terms of different shapes {sorted(shapes)}")
    return LowRank(torch.cat([t.A for t in terms], dim=0), torch.cat([t.B for t in terms], dim=1))


def weighted_sum(items: list[tuple[Factors, float]]) -> Factors:
    """Σ_p η_p·φ_p module by module; a module present in only some inputs takes only those terms."""
    keys: list[str] = []
    for factors, _ in items:
        keys.extend(k for k in factors if k not in keys)
    out: Factors = {}
    for k in keys:
        terms = [f[k].scaled(w) for f, w in items if k in f]
        out[k] = concat(terms)
    return out


def difference(pos: Factors, neg: Factors) -> Factors:
    """φ = ΔW+ − ΔW−: A = [A+; A−], B = [s+B+, −s−B−]; a module on one side only keeps its sign."""
    return weighted_sum([(pos, 1.0), (neg, -1.0)])


def _thin_qr(M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.linalg.qr(M, mode="reduced")


def svd_factors(lr: LowRank) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact SVD of B·A from the factors: B = Q_B R_B, Aᵀ = Q_A R_A, core R_B R_Aᵀ = U S Vᵀ (r×r),
    so B·A = (Q_B U) S (Q_A V)ᵀ. Returns (left (d_out, r), S (r,), right (r, d_in))."""
    Qb, Rb = _thin_qr(lr.B)  # (d_out, r), (r, r)
    Qa, Ra = _thin_qr(lr.A.T)  # (d_in, r), (r, r)
    U, S, Vh = torch.linalg.svd(Rb @ Ra.T, full_matrices=False)  # (r, r) core (smaller when r > d_out or d_in)
    return Qb @ U, S, Vh @ Qa.T


def truncate(lr: LowRank, k: int) -> tuple[LowRank, float, float]:
    """Best rank-k approximation of B·A (Eckart–Young), from the factors only.

    Returns (factors, absolute Frobenius error, ||B·A||_F). The singular values are split evenly
    between the two factors (√S on each) so neither factor's scale dominates in low precision. A
    ``k`` past the module's smaller dimension keeps it exact (its rank is at most that dimension)."""
    if k <= 0:
        raise ValueError(f"rank must be positive, got {k}")
    left, S, right = svd_factors(lr)  # (d_out, m), (m,), (m, d_in), m ≤ min(r, d_out, d_in)
    k = min(k, S.numel())
    total = float(torch.linalg.vector_norm(S))
    err = float(torch.linalg.vector_norm(S[k:]))
    root = S[:k].sqrt()
    return LowRank(root[:, None] * right[:k], left[:, :k] * root[None, :]), err, total


def compress(factors: Factors, k: int) -> tuple[Factors, dict[str, float], float]:
    """Truncate every module to rank ≤ k. Returns (factors, per-module relative error, overall
    relative error = sqrt(Σ err²) / sqrt(Σ ||ΔW||²))."""
    out, rel, err2, tot2 = {}, {}, 0.0, 0.0
    for key, lr in factors.items():
        t, err, total = truncate(lr, k)
        out[key] = t
        rel[key] = err / total if total > 0 else 0.0
        err2 += err**2
        tot2 += total**2
    return out, rel, (err2**0.5 / tot2**0.5 if tot2 > 0 else 0.0)


def inner(x: LowRank, y: LowRank) -> float:
    """<B1·A1, B2·A2>_F = Σ (B1ᵀB2) ⊙ (A1·A2ᵀ), in O(r² (d_in + d_out))."""
    return float(((x.B.T @ y.B) * (x.A @ y.A.T)).sum())  # (r1, r2) ⊙ (r1, r2)


def norm(x: LowRank) -> float:
    return max(inner(x, x), 0.0) ** 0.5


def total_inner(f: Factors, g: Factors) -> float:
    return sum(inner(f[k], g[k]) for k in f if k in g)


def total_norm(f: Factors) -> float:
    return max(total_inner(f, f), 0.0) ** 0.5


def cosine(f: Factors, g: Factors) -> float:
    """Cosine similarity of two vectors flattened over all modules (missing modules count as 0)."""
    nf, ng = total_norm(f), total_norm(g)
    return total_inner(f, g) / (nf * ng) if nf > 0 and ng > 0 else 0.0


def pad_rank(lr: LowRank, r: int) -> LowRank:
    """Zero rows/columns up to rank r: the same ΔW, a uniform rank that every LoRA runtime accepts."""
    extra = r - lr.rank
    if extra <= 0:
        return lr
    A = torch.cat([lr.A, lr.A.new_zeros(extra, lr.A.shape[1])], dim=0)
    B = torch.cat([lr.B, lr.B.new_zeros(lr.B.shape[0], extra)], dim=1)
    return LowRank(A, B)


def check_finite(tensors: dict[str, torch.Tensor], file: Path) -> None:
    """Refuse NaN or Inf in any floating tensor: such an adapter would poison every output."""
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ArtifactError(f"{file}: tensor {name!r} holds NaN or Inf values; the adapter is corrupt")
