"""Annotator agreement: how far operators agree with each other, with themselves and with the gold set.

Label noise sets the ceiling of every model trained from the station's feedback, so the station
measures it continuously, from the decisions it stores.

- :mod:`.statistics`: Cohen's and Fleiss' kappa, Krippendorff's alpha, percent agreement (NumPy).
- :mod:`.report`: one report over a set of ratings: overall, pairwise, per class and band, each
  operator against the others, the gold labels and themselves, drift over time, disputed items.
- :mod:`.ratings`: where ratings come from: the store's decisions, or a CSV.
- :mod:`.gold`: the gold set, the calibration exercise a new operator takes on it, and its results.
- :mod:`.gold_build`: rendering a gold set from the simulated line.
"""
