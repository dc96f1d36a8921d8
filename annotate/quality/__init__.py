"""Label quality: the final label of an item, agreement, gold answers, Dawid–Skene.

- consensus.py   majority of the voters (ties marked) and the final label's precedence
- votes.py       one item's voters, and what they add to the agreement tallies
- tallies.py     per-project counters (annotate.models.Tally), added to in the change's transaction
- finals.py      keeping an item's final label, agreement and dashboard tallies right on a change
"""

from annotate.quality.consensus import Consensus, consensus, final_of, voting_values

__all__ = ["Consensus", "consensus", "final_of", "voting_values"]
