"""All user-facing Chinese text of the dialogs, one module per flow (each reads like a script)."""
