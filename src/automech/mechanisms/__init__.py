"""Mechanisms: one interface, ``outcome(bids) -> (allocation, payments)``.

:data:`MECHANISMS` maps every mechanism name to its class; checkpoints and the CLI go
through it.  :data:`CLASSICAL` lists the closed-form baselines ``automech baselines`` runs;
:data:`LEARNED` the designs that methods fit (LP tables, menus, networks, affine maximizers).
"""

from automech.mechanisms.learned.affine_maximizer import DeterministicAMA, LotteryAMA
from automech.mechanisms.base import Mechanism, check_bids
from automech.mechanisms.classical.bundle import BundlePostedPrice, GrandBundle
from automech.mechanisms.classical.cost_baselines import BundleOPT, SeparableOPT, SharedBundleOPT
from automech.mechanisms.classical.first_price import FirstPrice
from automech.mechanisms.learned.gemnet import GemNetMechanism
from automech.mechanisms.learned.lp_table import LPTable
from automech.mechanisms.learned.menu import MenuMechanism
from automech.mechanisms.classical.myerson import Myerson, SeparateMyerson
from automech.mechanisms.learned.myersonnet import MyersonNetMechanism
from automech.mechanisms.classical.posted_price import PostedPrice
from automech.mechanisms.learned.regretnet import ALGNetMechanism, RegretNetMechanism
from automech.mechanisms.learned.tedi import TEDIMechanism
from automech.mechanisms.classical.vcg import VCG

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
