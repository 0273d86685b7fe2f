"""Synthesizing problems with verified answers: Self-Instruct, GLAN and Orca-style generation."""
