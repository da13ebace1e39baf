"""Interpretability: which input features the final model's decisions rest on.

``config.py`` holds the ``evaluation.explain`` section; ``attributions.py`` the
attribution methods on Captum (imported only when one runs); ``maps.py`` the arithmetic
on attribution maps (per-class means, the share inside a backdoor trigger); ``plots.py``
the figures; ``run.py`` explains one run (the server hook and ``fedrobust explain``);
``server.py`` the server hook.
"""
