"""What an η (a preference vector's weight) may be: one rule for the CLI, the API, configs, manifests
and server requests."""

from __future__ import annotations

import math
from typing import Any

from pvlora.core.errors import ArtifactError

MAX_ETA = 1000.0


def check_eta(name: str, eta: Any) -> float:
    """η as a float: a finite number of at most MAX_ETA in size, or an error naming the vector."""
    try:
        value = float(eta)
    except OverflowError:  # an integer too large for a float (a long JSON literal)
        raise ArtifactError(f"weight for {name!r} is too large; |η| must be at most {MAX_ETA:g}") from None
    except (TypeError, ValueError):
        raise ArtifactError(f"weight for {name!r} must be a number, got {eta!r:.60}") from None
    if not math.isfinite(value):
        raise ArtifactError(f"weight for {name!r} must be finite, got {eta!r}")
    if abs(value) > MAX_ETA:  # far past where any model degrades; large enough values overflow fp32 factors
        raise ArtifactError(f"weight for {name!r} is {value:g}; |η| must be at most {MAX_ETA:g} "
                            "(useful weights are about -3 to 3)")
    return value

