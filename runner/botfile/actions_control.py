"""Actions: control (registered into runner.botfile.actions.ACTIONS when actions is imported)."""

from __future__ import annotations
