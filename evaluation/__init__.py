"""Evaluation: FID, precision/recall, density/coverage under named protocols (docs/protocol.md).

Every number carries its protocol's name: `p0` (pytorch-fid Inception pool3, the reported one) or
`proxy` (the features of the project's small MNIST classifier, for monitoring). This module stays
free of heavy imports so that training/config.py can read the protocol registry.
"""

from common.errors import UserError


class EvaluationError(UserError):
    """Bad evaluation input (empty folder, wrong image size, too few samples, missing weights).

    The eval-gan CLI prints the message on one line and exits 2.
    """
