"""The paper's claims as experiments, one module per claim (SPEC.md, "What the experiments test").

- :mod:`aedyn.experiments.e2`: how much over-parameterisation each regime needs: the least width
  ``m*`` at which gradient descent succeeds in most seeds, under three criteria (``aedyn threshold``).

Experiments are library code: they return numbers and tables and never print or write files.
"""
