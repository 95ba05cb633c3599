"""Mechanisms: one interface, ``outcome(bids) -> (allocation, payments)``.

:data:`MECHANISMS` maps every mechanism name to its class; checkpoints and the CLI go
through it.  :data:`CLASSICAL` lists the closed-form baselines ``automech baselines`` runs;
:data:`LEARNED` the designs that methods fit (LP tables, menus, networks, affine maximizers).
"""

from automech.mechanisms.affine_maximizer import DeterministicAMA, LotteryAMA
from automech.mechanisms.base import Mechanism, check_bids
from automech.mechanisms.bundle import BundlePostedPrice, GrandBundle
from automech.mechanisms.cost_baselines import BundleOPT, SeparableOPT, SharedBundleOPT
from automech.mechanisms.first_price import FirstPrice
from automech.mechanisms.gemnet import GemNetMechanism
from automech.mechanisms.lp_table import LPTable
from automech.mechanisms.menu import MenuMechanism
from automech.mechanisms.myerson import Myerson, SeparateMyerson
from automech.mechanisms.myersonnet import MyersonNetMechanism
from automech.mechanisms.posted_price import PostedPrice
from automech.mechanisms.regretnet import ALGNetMechanism, RegretNetMechanism
from automech.mechanisms.tedi import TEDIMechanism
from automech.mechanisms.vcg import VCG

CLASSICAL: tuple[type[Mechanism], ...] = (
    VCG, Myerson, SeparateMyerson, GrandBundle, PostedPrice, BundlePostedPrice, FirstPrice,
    SeparableOPT, BundleOPT, SharedBundleOPT,
)

LEARNED: tuple[type[Mechanism], ...] = (
    LPTable, MenuMechanism, LotteryAMA, DeterministicAMA, RegretNetMechanism, ALGNetMechanism,
    MyersonNetMechanism, TEDIMechanism, GemNetMechanism,
)

MECHANISMS: dict[str, type[Mechanism]] = {cls.name: cls for cls in (*CLASSICAL, *LEARNED)}

__all__ = ["Mechanism", "check_bids", "MECHANISMS", "CLASSICAL", "VCG",
           "Myerson", "SeparateMyerson", "GrandBundle", "PostedPrice", "BundlePostedPrice",
           "FirstPrice"]
