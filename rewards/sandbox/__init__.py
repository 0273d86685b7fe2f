"""The code sandbox: a pool of fork servers that run untrusted programs in namespaces, cgroups,
Landlock and seccomp, and a judge process for assert tests. See docs/sandbox.md.

Standard library only: ``server`` runs as ``python -I -S`` and imports its siblings from here.
"""
