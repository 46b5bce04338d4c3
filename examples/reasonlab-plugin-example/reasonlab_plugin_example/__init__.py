"""An example reasonlab plugin package."""
