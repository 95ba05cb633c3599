"""Mechanisms: one interface, ``outcome(bids) -> (allocation, payments)``.

:data:`MECHANISMS` maps every mechanism name to its class; checkpoints and the CLI go
through it.  :data:`CLASSICAL` lists the closed-form baselines ``automech baselines`` runs.
"""

from automech.mechanisms.base import Mechanism, check_bids
from automech.mechanisms.bundle import BundlePostedPrice, GrandBundle
from automech.mechanisms.first_price import FirstPrice
from automech.mechanisms.menu import MenuMechanism
from automech.mechanisms.myerson import Myerson, SeparateMyerson
from automech.mechanisms.posted_price import PostedPrice
from automech.mechanisms.vcg import VCG

CLASSICAL: tuple[type[Mechanism], ...] = (
    VCG, Myerson, SeparateMyerson, GrandBundle, PostedPrice, BundlePostedPrice, FirstPrice,
)

MECHANISMS: dict[str, type[Mechanism]] = {cls.name: cls for cls in (*CLASSICAL, MenuMechanism)}


def register_mechanism(cls: type[Mechanism]) -> type[Mechanism]:
    """Add a mechanism class to :data:`MECHANISMS` (usable as a decorator)."""
    MECHANISMS[cls.name] = cls
    return cls


__all__ = ["Mechanism", "check_bids", "MECHANISMS", "CLASSICAL", "register_mechanism", "VCG",
           "Myerson", "SeparateMyerson", "GrandBundle", "PostedPrice", "BundlePostedPrice",
           "FirstPrice"]
