"""Exit reasons as OTP's behaviours read them (supervisor semantics, not the kernel's)."""

from __future__ import annotations

from typing import Any

from beamlet._core import NORMAL, SHUTDOWN


def is_clean_reason(reason: Any) -> bool:
    """True for the reasons that are not errors: normal, shutdown, (shutdown, _) (§1.5):
    a transient child is not restarted for them, and no crash report is logged.

    Examples:
        >>> from beamlet import NORMAL, SHUTDOWN, is_clean_reason
        >>> is_clean_reason(NORMAL), is_clean_reason((SHUTDOWN, "done")), is_clean_reason("crash")
        (True, True, False)
    """
    return reason in (NORMAL, SHUTDOWN) or (
        type(reason) is tuple and len(reason) == 2 and reason[0] == SHUTDOWN
    )
