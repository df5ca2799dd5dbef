"""Evaluation: metrics, evaluation runs, protocols, comparison and exports."""
