"""Interventions on a model's layers: record, patch, steer; the activation cache."""
