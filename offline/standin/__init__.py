"""An in-process stand-in for Amazon SageMaker and SageMaker Runtime (built-in K-Means).

    standin = SageMakerStandIn(region="us-east-1", account_id="123456789012",
                               faults=Faults(), timing=Timing())
    standin.install()    # every boto3/botocore "sagemaker" / "sagemaker-runtime" client is answered here
    ...
    standin.uninstall()  # stop answering, stop and join the background threads (idempotent)

moto (``moto.mock_aws``) answers every other service, including the S3 and KMS calls the stand-in
makes itself (training data, model artifacts, key checks).

Laid out as moto's ``sagemaker/`` and ``sagemakerruntime/`` packages are:

    hook.py        how requests reach the stand-in (botocore's before-send event; moto's urls.py)
    responses.py   the wire: HTTP request in, SageMaker's HTTP response or error out
    backend.py     SageMaker: one method per operation
    runtime.py     SageMaker Runtime: InvokeEndpoint
    exceptions.py  one class per error code
    validators.py  request checks (service-model constraints and SageMaker's rules)
    models.py      the resources, each with describe() and summary()
    state.py       the resources of one account and region, their lock, threads and AWS clients
    search.py      the tuning job's hyperparameter search
    training.py    a tuning job's background work (training jobs, channels from S3, artifacts to S3)
    hosting.py     an endpoint's background work (deploy, delete)
    kmeans.py      the K-Means algorithm and its data formats; ndarray.py, its model artifact
    faults.py      Faults and Timing, what tests control
    service.py     SageMakerStandIn: the backends plus the hook
"""

from .faults import Faults, Timing
from .service import SageMakerStandIn

__all__ = ["SageMakerStandIn", "Faults", "Timing"]
