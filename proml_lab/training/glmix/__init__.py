"""Generalized linear mixed models: a fixed effect plus per-entity random effects, by coordinate descent."""
