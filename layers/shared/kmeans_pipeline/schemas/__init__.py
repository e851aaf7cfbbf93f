"""The JSON the pipeline speaks: the execution input, the run configuration, every step's input and output, the stack's settings."""
