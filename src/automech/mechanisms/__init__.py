"""Mechanisms: one interface, ``outcome(bids) -> (allocation, payments)``.

:mod:`~automech.mechanisms.base` is the interface; :mod:`~automech.mechanisms.classical`
holds the closed-form rules (:data:`CLASSICAL`, what ``automech baselines`` runs, by name in
:data:`MECHANISMS`); :mod:`~automech.mechanisms.learned` the designs whose parameters a
method fits (LP tables, menus, networks, affine maximizers), each declared by the method
that fits it (:func:`automech.methods.mechanism_class` finds a class by name).
"""

from automech.mechanisms.base import Mechanism, check_bids
from automech.mechanisms.classical.bundle import BundlePostedPrice, GrandBundle
from automech.mechanisms.classical.cost_baselines import BundleOPT, SeparableOPT, SharedBundleOPT
from automech.mechanisms.classical.first_price import FirstPrice
from automech.mechanisms.classical.myerson import Myerson, SeparateMyerson
from automech.mechanisms.classical.posted_price import PostedPrice
from automech.mechanisms.classical.vcg import VCG

CLASSICAL: tuple[type[Mechanism], ...] = (
    VCG,
    Myerson,
    SeparateMyerson,
    GrandBundle,
    PostedPrice,
    BundlePostedPrice,
    FirstPrice,
    SeparableOPT,
    BundleOPT,
    SharedBundleOPT,
)

#: The classical mechanisms by name.
MECHANISMS: dict[str, type[Mechanism]] = {cls.name: cls for cls in CLASSICAL}

__all__ = [
    "Mechanism",
    "check_bids",
    "MECHANISMS",
    "CLASSICAL",
    "VCG",
    "Myerson",
    "SeparateMyerson",
    "GrandBundle",
    "PostedPrice",
    "BundlePostedPrice",
    "FirstPrice",
]
