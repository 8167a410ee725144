"""Analyses of trained runs (``python scripts/analyze.py``): how much rank a task needs, activation similarity
to full fine-tuning (linear CKA) and the loss landscape through three solutions.

- :mod:`.weights`: ΔW = W − W0 per adapted layer, ``save_full_weights``' file.
- :mod:`.runs`: rebuild a run's model and data from its ``result.json``.
- :mod:`.spectra`: singular values, effective ranks, subspace overlap, truncation to rank k.
- :mod:`.rank_need`, :mod:`.cka`, :mod:`.landscape`: the three analyses (tables and figures).
"""
