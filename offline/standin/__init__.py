"""An in-process stand-in for Amazon SageMaker and SageMaker Runtime (built-in K-Means).

    standin = SageMakerStandIn(region="us-east-1", account_id="123456789012",
                               faults=Faults(), timing=Timing())
    standin.install()    # every boto3/botocore "sagemaker" / "sagemaker-runtime" client is answered here
    ...
    standin.uninstall()  # stop answering, stop and join the background threads (idempotent)

moto (``moto.mock_aws``) answers every other service, including the S3 and KMS calls the stand-in
makes itself (training data, model artifacts, key checks).
"""

from .service import Faults, SageMakerStandIn, Timing

__all__ = ["SageMakerStandIn", "Faults", "Timing"]
