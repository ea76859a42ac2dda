"""Rapport benchmarks: ``python -m bench`` (``make bench``).

Every figure is printed next to a reference measured in the same run on the same machine
(bare HTTP, crypto, database), with their ratio. See BENCHMARKS.md.
"""
