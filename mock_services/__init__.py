"""Mock product, reviews and inventory services for developing and testing the BFF.

They speak the wire format of docs/contract.md §1, answer deterministic bodies per id (see
`mock_services.catalogue`), and take faults at run time through `/__faults` (docs/contract.md §3).

    app = create_service_app("reviews", latency_scale=0)

Modules: `catalogue` (bodies, pure), `faults` (settings and the per-request draw),
`presets` (named fault scenarios), `state` (per-app faults, RNG, stats), `handlers`
(catalogue endpoints), `admin` (`/__faults`, `/__stats`, `/__presets`), `app` (the factory),
`lab` (the fault lab page), `cli` (`python -m mock_services`).
"""

from .app import create_service_app
from .faults import FaultSettings
from .state import DEFAULT_LATENCY_MS, ServiceKind

__all__ = ["DEFAULT_LATENCY_MS", "FaultSettings", "ServiceKind", "create_service_app"]
