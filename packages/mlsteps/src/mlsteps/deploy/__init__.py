"""From champion to endpoint: a registered model version deployed to a SageMaker endpoint, served by this project's
image (docs/deploy.md).

- ``settings``: what a deployment needs from the config (``deploy:``), checked before any AWS call;
- ``sagemaker``: the SageMaker calls (boto3), each failure said in one line;
- ``smoke``: the holdout rows sent through an endpoint and compared with the model's own predictions;
- ``run``: ``deploy_model`` (archive, upload, model, endpoint config, create or update, wait, smoke test, roll
  back) and ``rollback_endpoint``; ``deploy_after_promotion`` for the gate;
- ``invoke``: a file scored through the endpoint, checked and written as ``predict`` does;
- ``commands``: the ``deploy``, ``deployments``, ``rollback`` and ``invoke`` subcommands.

What a deployment leaves in MLflow (a run in ``<experiment>-deployments``, tags on the model version) is written
by ``mlsteps.registry``. Importing this package imports neither boto3 nor MLflow.
"""
