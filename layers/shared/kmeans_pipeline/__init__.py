"""Shared code for the K-Means retraining pipeline's Lambda steps (shipped as the SharedLayer)."""
