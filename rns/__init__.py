"""rns: Retrieve and Segment, test-time adaptive open-vocabulary semantic segmentation.

The Python API that the `rns` command wraps. See README.md for an example.
"""

from rns.errors import InputError, RnsError, WeightsUnavailableError

__all__ = ["RnsError", "InputError", "WeightsUnavailableError"]
__version__ = "0.1.0"
