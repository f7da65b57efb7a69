"""otzoo.losses: the optimal-transport contrastive objectives, as ``nn.Module`` s.

>>> from otzoo.losses import create_loss
>>> loss_fn = create_loss("gca_uot")          # defaults of the spec
>>> loss = loss_fn(z1, z2)                    # z1, z2: (B, D) views; fp32 scalar
>>> plan = loss_fn.plan(z1, z2)               # the coupling it used, (2B, 2B)
"""
from .registry import create_loss, get_loss_class, list_losses, register_loss
from ._base import ContrastiveLoss, NonFiniteInputError
from .infonce import InfoNCELoss
from .rince import RINCELoss
from .gca import GCAINCELoss, GCARINCELoss, GCAUOTLoss
from .iot import IOTLoss, IOTUniformLoss
from .sinsim import SinSimLoss
from .matching_gap import MatchingGapLoss
from .otco import OTCOLoss
from .byol import BYOLLoss
from .sinkhorn import sinkhorn, log_plan, uot_kappa, entropic_log_plan
from .targets import domain_target

__all__ = [
    "create_loss", "list_losses", "register_loss", "get_loss_class", "ContrastiveLoss", "NonFiniteInputError",
    "InfoNCELoss", "RINCELoss", "GCAINCELoss", "GCARINCELoss", "GCAUOTLoss", "IOTLoss",
    "IOTUniformLoss", "SinSimLoss", "MatchingGapLoss", "OTCOLoss", "BYOLLoss",
    "sinkhorn", "log_plan", "uot_kappa", "entropic_log_plan", "domain_target",
]
