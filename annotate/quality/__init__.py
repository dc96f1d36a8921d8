"""Label quality: the final label of an item, agreement, gold answers, Dawid–Skene.

- matching.py    which boxes (Hungarian, IoU ≥ 0.5) or spans (exact or overlapping offsets) of
                 two or more annotators are the same object; no Django
- consensus.py   majority of the voters (ties marked) and the final label's precedence
- votes.py       one item's voters, and what they add to the agreement tallies
- tallies.py     per-project counters (annotate.models.Tally), added to in the change's transaction
- finals.py      keeping an item's final label, agreement and dashboard tallies right on a change
- agreement.py   agreement measures from the tallies
- gold.py        gold accuracy (the Wilson interval) and the automatic pause; no Django, so that
                 training/evaluation.py, which imports none, takes its interval from here
- dawid_skene.py, recompute.py   Dawid–Skene, and recomputing the final labels with it
- rebuild.py     recounting a project's final labels and tallies from its rows

Import the modules themselves: this package's __init__ imports nothing.
"""
