"""Coding: machine coders (rules, semantic), human coding import, agreement."""
