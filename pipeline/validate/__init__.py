"""Validation reports: every deployed artifact streamed over the held-out split and held
against its float reference, with budgets and a recommendation per target."""
