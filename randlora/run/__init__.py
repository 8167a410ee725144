"""Run machinery: what happens around one training run, as opposed to the plain helpers in ``randlora.utils``.

- :mod:`~randlora.run.results`: the per-run ``result.json`` (building, atomic writes, peak memory).
- :mod:`~randlora.run.task_wrapper`: a run that raises is still recorded as a failed result.
- :mod:`~randlora.run.resume`: ``last.ckpt`` every epoch, checked before it is loaded;
  :mod:`~randlora.run.resume_plan`: ``resume=true|auto|<ckpt>``, which checkpoint and which run folder.
- :mod:`~randlora.run.callbacks`: the adapter checkpoint and the metric history.
- :mod:`~randlora.run.summary`, :mod:`~randlora.run.logs`: what a person sees at the end of a run and in its log.

Imports go one way: ``randlora.run`` may use ``randlora.utils``; ``randlora.utils`` never imports ``randlora.run``.
"""
