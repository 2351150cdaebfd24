"""The LoRA training pipeline: datasets, validation, general-data mix, training, evaluation, jobs.

A job validates a tenant's dataset, mixes in general data, trains a LoRA adapter with a plain torch
loop (peft), evaluates adapter and base model on held-out task data and general data, and
registers a passing adapter as a new version (optionally the canary). It runs in a thread of the
``adapters`` application by default, or as a Ray job (:mod:`lorag.training.runners`).
"""
