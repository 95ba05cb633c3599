"""The one interface every mechanism implements.

A mechanism maps bids (B, n, m) to an allocation (B, n, m) of probabilities and payments
(B, n).  ``outcome`` is the public NumPy entry point (bids are checked at the boundary);
``forward`` is the batched torch path used for training and evaluation.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from automech.errors import BidError
from automech.problems.setting import Setting


class Mechanism(torch.nn.Module):
    """Base class: subclasses set ``name`` and implement :meth:`forward`.

    Class attributes:
        name: registry name, used by checkpoints and the CLI.
        differentiable: whether outcomes are (almost everywhere) differentiable in the bids,
            so that the evaluator may refine misreports by gradient ascent.
    """

    name: ClassVar[str]
    differentiable: ClassVar[bool] = False

    def __init__(self, setting: Setting) -> None:
        super().__init__()
        self.setting = setting

    @classmethod
    def applicable(cls, setting: Setting) -> str | None:
        """None if the mechanism applies to ``setting``, else the reason it does not."""
        return None

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched outcome: bids (B, n, m) -> allocation (B, n, m), payments (B, n)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this mechanism with ``cls(setting, **cfg)``."""
        return {}

    def describe(self, values: np.ndarray) -> dict[str, Any]:
        """What the mechanism offers, JSON-able.  Learned designs override this to list the
        menu entries or allocations actually chosen on the profiles ``values`` (B, n, m)
        and how often; the default gives the rebuild config."""
        return {"kind": self.name, "config": self.config()}

    @property
    def dtype(self) -> torch.dtype:
        for t in [*self.parameters(), *self.buffers()]:
            if t.is_floating_point():
                return t.dtype
        return torch.float64

    @property
    def device(self) -> torch.device:
        for t in [*self.parameters(), *self.buffers()]:
            return t.device
        return torch.device("cpu")

    def outcome(self, bids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the mechanism on a batch of bid profiles.

        Parameters
        ----------
        bids
            Array-like (B, n, m): bidder i's reported value for item j in profile b
            (a single profile (n, m) is refused: add the batch axis).

        Returns
        -------
        allocation : numpy.ndarray
            (B, n, m), the probability that bidder i gets item j.
        payments : numpy.ndarray
            (B, n), what each bidder pays.

        Raises
        ------
        BidError
            naming what is wrong when the bids have the wrong shape, are not finite, are
            negative, or exceed :func:`max_bid` (beyond it the mechanism's float
            precision no longer gives its outcome to 0.1 % of the prior's scale).
        """
        dtype, device = self.dtype, self.device
        checked = check_bids(bids, self.setting, dtype, self._bid_limit(dtype))
        if len(checked) == 0:
            n, m = self.setting.shape
            return np.zeros((0, n, m)), np.zeros((0, n))
        with torch.no_grad():
            x = torch.as_tensor(checked, dtype=dtype, device=device)
            alloc, pay = self(x)
        return (alloc.detach().cpu().double().numpy(), pay.detach().cpu().double().numpy())

    def _bid_limit(self, dtype: torch.dtype) -> float:
        """:func:`max_bid` for this mechanism's setting, computed once per precision (the
        support box of some laws costs scipy calls; ``outcome`` runs per auction)."""
        limits = self.__dict__.setdefault("_bid_limits", {})
        if dtype not in limits:
            limits[dtype] = max_bid(self.setting, dtype)
        return limits[dtype]

    def extra_repr(self) -> str:
        return f"setting={self.setting.name or self.setting.describe()}"


def check_bids(
    bids: Any, setting: Setting, dtype: torch.dtype = torch.float64, limit: float | None = None
) -> np.ndarray:
    """Bids as a float64 (B, n, m) array, or a :class:`BidError` naming what is wrong;
    ``dtype``: the precision the mechanism computes in, ``limit`` its :func:`max_bid`
    when the caller has it."""
    try:
        arr = np.asarray(bids, dtype=np.float64)
    except (TypeError, ValueError):
        raise BidError("bids must be a numeric array of shape (B, n, m)") from None
    n, m = setting.shape
    if arr.ndim != 3 or arr.shape[1:] != (n, m):
        hint = " (for one profile use bids[None])" if arr.shape == (n, m) else ""
        raise BidError(
            f"bids must have shape (B, {n}, {m}) for this setting "
            f"({n} bidders x {m} items); got {arr.shape}{hint}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BidError(
            f"bids contain {int(bad.sum())} NaN or infinite value(s), first at index {first}"
        )
    neg = arr < 0
    if neg.any():
        first = tuple(int(i) for i in np.argwhere(neg)[0])
        raise BidError(
            f"bids must be >= 0; {int(neg.sum())} negative value(s), first "
            f"{arr[first]} at index {first}"
        )
    limit = max_bid(setting, dtype) if limit is None else limit
    high = arr > limit
    if high.any():
        first = tuple(int(i) for i in np.argwhere(high)[0])
        raise BidError(
            f"bids must be <= {limit:.3g} for this mechanism ({str(dtype).removeprefix('torch.')}"
            f" arithmetic, values up to {limit * PRECISION / _eps(dtype):.3g} in the prior); "
            f"{int(high.sum())} larger value(s), first {arr[first]:.3g} at index {first}"
        )
    return arr


#: Accuracy :func:`max_bid` keeps: outcomes to this fraction of the prior's scale.
PRECISION = 1e-3


def _eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def max_bid(setting: Setting, dtype: torch.dtype = torch.float64) -> float:
    """The largest bid :meth:`Mechanism.outcome` accepts from a mechanism computing in
    ``dtype``: ``h * PRECISION / eps(dtype)``, with ``h`` the largest value of the prior's
    support box (unbounded laws are cut at a quantile).  A bid b carries a rounding error
    of about ``eps * b`` into utilities and payments, which this keeps below
    ``PRECISION * h``: about 8,400 h in float32, 4.5e12 h in float64."""
    high = float(np.max(setting.prior.support()[1]))
    return (high if high > 0 else 1.0) * PRECISION / _eps(dtype)


@runtime_checkable
class Design(Protocol):
    """What a design method returns and a run directory stores: a static
    :class:`Mechanism` or a dynamic affine maximizer.  ``name`` and ``config()`` rebuild
    it with its class, ``state_dict()`` holds its parameters."""

    @property
    def name(self) -> str: ...

    @property
    def setting(self) -> Any: ...

    def config(self) -> dict[str, Any]: ...

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any, /) -> Any: ...

    def outcome(self, *args: Any, **kwargs: Any) -> Any: ...

    def describe(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def eval(self) -> Any: ...
