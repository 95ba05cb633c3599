"""Closed-form mechanisms: the baselines ``automech baselines`` runs."""
