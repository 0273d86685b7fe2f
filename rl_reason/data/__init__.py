"""Data: the procedural tasks and their prompts, the one loader (file, directory, Hub, procedural),
and the tiny model built from code for tests and the demo."""
