"""What tests share: the moto account's constants and helpers, recorders, and the offline stack's resets.

Tests import from here, never from another test module or from conftest.py (which holds only fixtures).
"""
