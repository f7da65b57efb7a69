"""otzoo's training package: pretraining, evaluation, export and publishing.

Runs from a checkout as ``python -m training <command>``; it is not installed with otzoo.
"""
