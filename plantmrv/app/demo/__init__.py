"""``plantmrv demo``: the whole pipeline on simulated plants, checked against their ground truth.

- :mod:`.harness`: starts every service as its own process and runs the demo (``plantmrv demo run``);
- :mod:`.truthcheck`: what each project's reductions should be, from the simulator's ground truth;
- :mod:`.report`: the Markdown report with a plot per project.
"""
