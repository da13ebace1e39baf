"""Hyper-parameter and architecture search over a scenario's fields (``fedrobust tune``).

``config.py`` holds the scenario's ``tune`` section, ``space.py`` turns it into trial
scenarios, ``study.py`` runs the trials on Optuna and ``report.py`` writes what a study
found. Optuna and matplotlib are imported inside the functions that use them.
"""
