"""The paper's claims as experiments, one module per claim (SPEC.md, "What the experiments test").

- :mod:`aedyn.experiments.e2`: how much over-parameterisation each regime needs: the least width
  ``m*`` at which gradient descent succeeds in most seeds, under three criteria (``aedyn threshold``;
  :func:`~aedyn.experiments.e2.least_width`), the tidy table of ``m*`` against ``n``, the fitted
  growth ``m* ∝ n^a`` with bootstrap intervals over seeds, and a verdict computed from them.

Experiments are library code: they return numbers and tables and never print or write files.
"""
