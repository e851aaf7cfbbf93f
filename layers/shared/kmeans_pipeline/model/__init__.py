"""The K-Means model itself: the algorithm's facts, its artifact, and scoring as the endpoint scores."""
