"""The head fit's two products with its training rows, each step: logits `P @ X.T` and gradient `R @ X`.

`X` is the problem's features with a column of ones for the bias, `[N, d + 1]`; `P` the head `[C, d + 1]`;
`R` the weighted residual `[C, N]`. Computed directly they cost N (d + 1) multiply-adds per class each.
When the rows are combinations of fewer vectors (`RowFactors`: ~200 fused anchors over ~50 prototypes and
text vectors), `X = A @ B` and the products run through the basis, `(P @ B.T) @ A.T` and `(R @ A) @ B`, at
K (N + d + 1) per class: about half, on one image's problem. `build_problem` attaches factors only where
they pay off (`factors_pay_off`); both ways give the same numbers up to the order of float sums.
"""

from __future__ import annotations

import torch

from rns.adapt.head import HeadProblem


class DirectProducts:
    """Both products against the rows themselves (`X` and a contiguous `X.T`)."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows, self.rows_t = rows, rows.T.contiguous()
        self.work = rows.shape[0] * rows.shape[1]  # multiply-adds per class per product

    def logits(self, params: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(params, self.rows_t, out=out)

    def gradient(self, residual: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(residual, self.rows, out=out)


class FactoredProducts:
    """Both products through the basis: `X = coefficients @ basis`, never formed."""

    def __init__(self, coefficients: torch.Tensor, basis: torch.Tensor, classes: int) -> None:
        self.coefficients, self.coefficients_t = coefficients, coefficients.T.contiguous()
        self.basis, self.basis_t = basis, basis.T.contiguous()
        self.inner = basis.new_empty(classes, basis.shape[0])  # [C, K], reused every step
        self.work = basis.shape[0] * (coefficients.shape[0] + basis.shape[1])

    def logits(self, params: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(params, self.basis_t, out=self.inner)
        torch.mm(self.inner, self.coefficients_t, out=out)

    def gradient(self, residual: torch.Tensor, out: torch.Tensor) -> None:
        torch.mm(residual, self.coefficients, out=self.inner)
        torch.mm(self.inner, self.basis, out=out)


def row_products(problem: HeadProblem) -> DirectProducts | FactoredProducts:
    """Products through the problem's factors when it has them, else with its rows (bias column added)."""
    features, factors = problem.features, problem.factors
    if factors is not None:
        # The bias column joins the basis as one more vector, (0, ..., 0, 1), that every row takes once.
        basis = torch.zeros(factors.rank + 1, features.shape[1] + 1, device=features.device,
                            dtype=features.dtype)
        basis[:-1, :-1] = factors.basis
        basis[-1, -1] = 1.0
        coefficients = torch.cat([factors.coefficients, torch.ones_like(features[:, :1])], dim=1)
        return FactoredProducts(coefficients, basis, problem.num_classes)
    return DirectProducts(torch.cat([features, torch.ones_like(features[:, :1])], dim=1))
