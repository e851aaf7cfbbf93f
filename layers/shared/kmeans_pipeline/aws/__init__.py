"""AWS as the steps use it: clients and error translation, S3 objects and channels, endpoints, the serving model, SageMaker names."""
