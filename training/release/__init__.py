"""From a finished run to a published weight: ``export`` (measure, write weights/, card, results),
``guard`` (what may write a release), ``measure`` (measure a released weight again), ``verify``,
``publish`` (the HF Hub), ``cards`` / ``readme`` (generated text), ``recipes`` / ``references`` (what a
weight is compared with), ``accuracy_curve``, and ``smoke`` (the whole pipeline on a few hundred
images). The top room: it may import ``training.run`` and ``training.evaluate``; nothing imports it but
the CLI.
"""
