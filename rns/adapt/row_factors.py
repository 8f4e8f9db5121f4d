"""Training rows written as combinations of fewer vectors, so that the head fit multiplies fewer numbers.

Every fused anchor is `normalize(l * v + (1 - l) * t)`: a combination of just two vectors, a class's
prototype and one of its text vectors. One image's problem holds about 200 anchors (6 mixing weights x
35 text vectors) but only about 50 distinct prototypes and text vectors, so its rows are
`coefficients @ basis` with a basis a quarter as tall. The head fit's two products per step
(`W @ X.T` and `R @ X`) then cost K (N + d) multiply-adds per class instead of N d
(`rns.adapt.solvers`). The rows themselves are still computed directly, as the reference computes them,
for everything else that reads them; the factors only change the order of the fit's sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Factors are worth using only when they multiply at most this share of the numbers the rows themselves
# do. Measured on one thread (d = 512, 12 classes), the fit through the basis takes about this share plus
# 0.05 of the direct fit's time: 0.59x at a share of 0.50, 0.70x at 0.64, 0.88x at 0.89, 1.17x at 1.15
# (its products are twice as many ops, each with a fixed cost).
FACTOR_SHARE = 0.85


def factors_pay_off(rank: int, rows: int, dim: int) -> bool:
    """Whether products through K = `rank` basis vectors, K (N + d), beat the direct N d enough."""
    return rank * (rows + dim) <= FACTOR_SHARE * rows * dim


@dataclass(frozen=True)
class RowFactors:
    """`coefficients [N, K]` over `basis [K, d]`: row i of the rows is `coefficients[i] @ basis`."""

    coefficients: torch.Tensor
    basis: torch.Tensor

    @classmethod
    def identity(cls, rows: torch.Tensor) -> RowFactors:
        """Rows that are their own basis (retrieved support rows: nothing shared to exploit)."""
        return cls(torch.eye(rows.shape[0], device=rows.device, dtype=rows.dtype), rows)

    @classmethod
    def empty(cls, dim: int, device: torch.device | str) -> RowFactors:
        return cls(torch.zeros(0, 0, device=device), torch.zeros(0, dim, device=device))

    @property
    def rank(self) -> int:
        """K, the number of basis vectors (an upper bound on the rows' rank)."""
        return int(self.basis.shape[0])

    def __len__(self) -> int:
        return int(self.coefficients.shape[0])

    def rows(self) -> torch.Tensor:
        """The rows these factors describe, `[N, d]` (for checks; the fit never forms them)."""
        return self.coefficients @ self.basis


def stack_factors(parts: list[RowFactors]) -> RowFactors:
    """The rows of several blocks one after another: block-diagonal coefficients over the joined bases."""
    return RowFactors(torch.block_diag(*[part.coefficients for part in parts]),
                      torch.cat([part.basis for part in parts]))
