"""Mechanisms whose parameters a design method fits (LP tables, menus, networks, affine
maximizers)."""
