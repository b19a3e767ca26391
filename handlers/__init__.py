"""Worker-side handlers, one concern per module; `handlers.registry` lists them all."""
