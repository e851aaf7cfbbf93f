"""Facts of SageMaker's built-in K-Means that the steps depend on: its tuning objective and tunable ranges."""

OBJECTIVE = "test:msd"
# SageMaker's recommended ranges for tuning K-Means ("Tune a K-Means Model" in the SageMaker developer guide).
EXTRA_CENTER_FACTOR = (4, 10)
MINI_BATCH_SIZE = (3000, 15000)
INIT_METHODS = ["kmeans++", "random"]
