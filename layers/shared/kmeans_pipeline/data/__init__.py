"""The data step's machinery: CSV blocks and their validation, the train/test split, channels and feature treatments."""
